"""Deployment packaging: the AWS Lambda zip (``python -m infra.package``) and the image inputs."""
