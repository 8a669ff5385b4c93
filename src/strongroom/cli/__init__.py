"""The operator's command line (Typer). A thin edge: it parses, calls services, prints."""
