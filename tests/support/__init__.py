"""Test support: the audio generator, the throw-away PostgreSQL and graph servers, signals."""
