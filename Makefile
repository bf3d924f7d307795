# Set-up and everyday commands. Each target installs what it needs (uv + the locked .venv).
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV_BIN := .venv/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help bootstrap serve test models lint docs

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

DOCS_PORT ?= 8001

docs: bootstrap  ## serve the documentation site (mkdocs.yml, docs/) on http://$(HOST):$(DOCS_PORT), rebuilt on save
	$(UV) sync --frozen --inexact --extra dev
	NO_MKDOCS_2_WARNING=1 $(VENV_BIN)/mkdocs serve --strict --dev-addr $(HOST):$(DOCS_PORT)

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

lint: bootstrap  ## ruff check, ruff format --check, mypy, lint-imports (layers of service/; config in pyproject.toml)
	$(UV) sync --frozen --all-extras
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy
	$(VENV_BIN)/lint-imports

# --- Packaging, deployment manifests, containers, benchmarks: infra/, serverless.yml, benchmarks/ ---
ARCH ?= x86_64
# Target Python: 3.12 (Lambda python3.12), 3.13 (python3.13), 3.11 (Debian bookworm images).
PY ?= 3.12
PKG_DIR = build/lambda/$(ARCH)$(if $(filter 3.12,$(PY)),,-py$(PY))
MODELS ?=
BENCH_ARGS ?=

.PHONY: package validate-infra images test-infra bench bench-containers

package: bootstrap  ## build the Lambda zip + image inputs in build/lambda/$(ARCH)/ (ARCH=arm64; PY=3.13; MODELS="dir ...")
	$(UV) sync --frozen --inexact
	$(VENV_BIN)/python -m infra.package --arch $(ARCH) --python $(PY) --server $(foreach m,$(MODELS),--model $(m))
	@# infra/sam/template.yaml deploys this copy (CodeUri); pass Architecture=$(ARCH) to sam deploy.
	mkdir -p build/lambda/sam && cp $(PKG_DIR)/edge-infer-$(ARCH).zip build/lambda/sam/edge-infer.zip

# W3005: serverless v3 adds a DependsOn that a Ref already implies; harmless, not ours to fix.
validate-infra: package  ## serverless.yml + SAM -> CloudFormation -> cfn-lint; Kubernetes + KServe schemas
	$(UV) sync --frozen --all-extras
	npm ci --prefix infra --no-audit --no-fund --ignore-scripts
	SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off infra/node_modules/.bin/serverless package \
		--stage dev --param="arch=$(ARCH)" --package build/serverless
	$(VENV_BIN)/cfn-lint --ignore-checks W3005 -- build/serverless/cloudformation-template-*.json
	$(VENV_BIN)/python -m infra.validate

images: bootstrap  ## podman: both images on Debian bookworm (localhost/edge-infer:debian, edge-infer-lambda:debian)
	$(UV) sync --frozen --all-extras
	$(VENV_BIN)/python -m infra.containers image
	$(VENV_BIN)/python -m infra.containers image-lambda

test-infra: bootstrap  ## manifests, both container images and the arm64 package under QEMU (part of `make test`)
	$(UV) sync --frozen --all-extras
	nice -n 10 $(VENV_BIN)/pytest tests/test_infra_manifests.py tests/test_container.py \
		tests/test_container_lambda.py tests/test_arm64_package.py

bench-containers: images  ## container start -> first prediction, both images -> benchmarks/results/container_start.json
	nice -n 10 $(VENV_BIN)/python -m benchmarks.startup.container_start $(BENCH_ARGS)

bench: bootstrap  ## cold start, latency, throughput vs the TensorFlow baseline -> benchmarks/results/ (BENCH_ARGS=...)
	$(UV) sync --frozen --all-extras
	$(MAKE) package
	nice -n 10 $(VENV_BIN)/python -m benchmarks $(BENCH_ARGS)
