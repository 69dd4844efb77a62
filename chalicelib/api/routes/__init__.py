"""Route blueprints, one per area of the API; app.py registers them. Each view parses its input,
calls one service and shapes the reply."""
