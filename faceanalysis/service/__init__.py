"""The HTTP service and the answer formats: legacy endpoint, API v2, jobs, the page, the OpenAPI document."""
