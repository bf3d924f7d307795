"""Over HTTP, against a real uvicorn server on loopback: latency per request and per upload size,
images per second (single, batch, concurrent clients), a 12 MP upload against its floor, and the
load test."""
