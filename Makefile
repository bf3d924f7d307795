# Set-up and everyday commands. Each target installs what it needs (uv + the locked .venv).
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV_BIN := .venv/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help bootstrap serve test models lint

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

serve: bootstrap  ## install the runtime + uvicorn and serve models_onnx/ on http://$(HOST):$(PORT)
	$(UV) sync --frozen --inexact --extra server
	$(VENV_BIN)/uvicorn service.app:app --host $(HOST) --port $(PORT)

test: bootstrap  ## install everything and run the whole test suite
	$(UV) sync --frozen --all-extras
	$(VENV_BIN)/pytest

# Offline weights for the seed models (../shared/data/keras_weights); WEIGHTS=imagenet on a
# connected machine converts ResNet50 / MobileNetV2 with Keras's real ImageNet weights.
KERAS_WEIGHTS ?= ../shared/data/keras_weights
WEIGHTS ?= none
MODEL_DIR ?= models_onnx
CONVERT := nice -n 10 $(VENV_BIN)/python -m convert

models: bootstrap  ## rebuild every model from data and publish it into $(MODEL_DIR)/ (WEIGHTS=imagenet online)
	$(UV) sync --frozen --inexact --extra convert
	$(CONVERT) mnist --publish $(MODEL_DIR)
	$(CONVERT) cats-vs-dogs --publish $(MODEL_DIR)
	$(CONVERT) keras-app mobilenet --alpha 0.75 --weights $(KERAS_WEIGHTS)/mobilenet_0.75_224.h5 --publish $(MODEL_DIR)
	$(CONVERT) keras-app resnet50 --weights $(WEIGHTS) --publish $(MODEL_DIR)
	$(CONVERT) keras-app mobilenet_v2 --weights $(WEIGHTS) --publish $(MODEL_DIR)

lint: bootstrap  ## ruff check, ruff format --check, mypy (service/ and convert/, config in pyproject.toml)
	$(UV) sync --frozen --all-extras
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy

# --- Packaging and benchmarks: infra/, serverless.yml, benchmarks/ ---
ARCH ?= x86_64
MODELS ?=
BENCH_ARGS ?=
CFN_LINT := cfn-lint==1.58.0

.PHONY: package validate-infra bench

package: bootstrap  ## build the Lambda zip + image inputs in build/lambda/$(ARCH)/ (ARCH=arm64; MODELS="dir ...")
	$(UV) sync --frozen --inexact
	$(VENV_BIN)/python -m infra.package --arch $(ARCH) --server $(foreach m,$(MODELS),--model $(m))

# W3005: serverless v3 adds a DependsOn that a Ref already implies; harmless, not ours to fix.
validate-infra: package  ## serverless.yml -> CloudFormation (serverless v3, offline) -> cfn-lint
	npm ci --prefix infra --no-audit --no-fund --ignore-scripts
	SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off infra/node_modules/.bin/serverless package \
		--stage dev --param="arch=$(ARCH)" --package build/serverless
	$(UV) tool run --from $(CFN_LINT) cfn-lint --ignore-checks W3005 -- build/serverless/cloudformation-template-*.json

bench: bootstrap  ## cold start, latency, throughput vs the TensorFlow baseline -> benchmarks/results/ (BENCH_ARGS=...)
	$(UV) sync --frozen --all-extras
	$(MAKE) package
	nice -n 10 $(VENV_BIN)/python -m benchmarks $(BENCH_ARGS)
