"""The HTTPS edge: FastAPI app factory, problem+json errors, security headers, TLS server."""
