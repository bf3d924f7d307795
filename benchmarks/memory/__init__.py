"""Memory: RSS of a real uvicorn server before, during and after bursts of 12 MP phone uploads."""
