"""Start-up: wall time from a fresh process (a Lambda package, uvicorn, a container) to its first
correct prediction, and the floor a Lambda cold start cannot go below."""
