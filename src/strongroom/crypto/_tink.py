"""Tink registration, done once on import."""

import tink
from tink import aead, streaming_aead

aead.register()
streaming_aead.register()

TinkError = tink.TinkError
