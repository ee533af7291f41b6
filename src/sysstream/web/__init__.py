"""The HTTP face: the FastAPI router, the standalone app, dashboard, Prometheus,
access control, limits and running it all on uvicorn."""
