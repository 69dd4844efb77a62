"""Structured JSON logs (one logger per process), via aws-lambda-powertools."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "exchange-api"))
