"""Operator and developer commands: migrations, the local stack, the `exchange` CLI.

Never packaged into the Lambda (only app.py and chalicelib/ are).
"""
