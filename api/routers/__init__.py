"""FastAPI routers, one per domain."""
