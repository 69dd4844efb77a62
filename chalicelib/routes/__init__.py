"""Route blueprints; app.py registers them. Each view parses, calls a service, shapes a reply."""
