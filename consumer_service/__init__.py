"""Consumer: decides queued requests per event under a fenced Redis lock."""
