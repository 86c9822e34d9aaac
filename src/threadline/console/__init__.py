"""The operator console: a web inbox at /console, served by the API process (routes, templates, static)."""
