"""Offline validation of the deployment manifests, with the validators each ecosystem uses.

    python -m infra.validate            # SAM, Kubernetes, KServe; exit 1 on any problem

- AWS SAM (``infra/sam/template.yaml``): ``aws-sam-translator`` (the library behind ``sam
  deploy``'s transform) turns it into CloudFormation, then ``cfn-lint`` lints the result.
- Kubernetes (``infra/k8s/``): each resource against the bundled OpenAPI schemas of
  ``kubernetes-validate`` in strict mode (unknown fields are errors, as ``kubectl``'s default
  ``--validate=strict`` field validation makes them), for the oldest and newest Kubernetes
  versions we support; the kustomization must list exactly the manifests beside it.
- KServe (``infra/kserve/``): the InferenceService against the ``openAPIV3Schema`` of KServe's
  own CustomResourceDefinition, vendored (see ``KSERVE_SCHEMA``), with unknown fields rejected
  like the API server's strict field validation does.

``serverless.yml`` is validated by the ``validate-infra`` make target (it needs the Serverless
Framework from npm to render it).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
from collections.abc import Iterable
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

INFRA = Path(__file__).resolve().parent
SAM_TEMPLATE = INFRA / "sam" / "template.yaml"
K8S_DIR = INFRA / "k8s"
KSERVE_DIR = INFRA / "kserve"
# openAPIV3Schema of serving.kserve.io/v1beta1 InferenceService, from KServe's CRD
# config/crd/full/serving.kserve.io_inferenceservices.yaml (github.com/kserve/kserve, commit
# aaac4e294dae2c7b1aa1886447793f3aa1c30912, file last changed in 43ec86b5, 2026-07-16);
# descriptions and `status` dropped, gzipped. Regenerate: python -m infra.validate --vendor-crd FILE
KSERVE_SCHEMA = KSERVE_DIR / "schema" / "inferenceservice-v1beta1.schema.json.gz"
# Oldest and newest Kubernetes minor versions the manifests are checked against.
KUBERNETES_VERSIONS = ("1.30", "1.37")
# Deploy-time regions: cfn-lint checks resource types and property values per region.
LINT_REGIONS = ("us-east-1", "eu-west-1")


def load_yaml_documents(path: Path) -> list[dict]:
    """Every non-empty YAML document of ``path``.

    Raises:
        yaml.YAMLError: the file is not YAML.
    """
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- AWS SAM ------------------------------------------------------------------------------------


class _OfflinePolicyLoader:
    """ManagedPolicyLoader without IAM: the template names no managed policy by name, and SAM's
    own AWSLambdaBasicExecutionRole ARN comes from its bundled table."""

    def load(self) -> dict[str, str]:
        return {}


def load_sam_template(path: Path = SAM_TEMPLATE) -> dict:
    """The template as plain JSON-able data, CloudFormation's short tags (!Ref, !Sub...) expanded.

    Raises:
        cfnlint.decode exceptions: the file is not a readable template.
    """
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    if matches:
        raise ValueError(f"{path}: " + "; ".join(str(m) for m in matches))
    return json.loads(json.dumps(template))


def as_packaged(template: dict, bucket: str = "edge-infer-artifacts") -> dict:
    """The template as ``sam deploy`` hands it to the transform: local ``CodeUri`` paths replaced
    by the S3 location it uploads them to (the translator accepts only ``s3://`` URIs)."""
    packaged = copy.deepcopy(template)
    for logical_id, resource in packaged.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        code_uri = properties.get("CodeUri")
        if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
            properties["CodeUri"] = f"s3://{bucket}/{logical_id}/{Path(code_uri).name}"
    return packaged


def translate_sam(template: dict, region: str = "us-east-1", parameters: dict | None = None) -> dict:
    """CloudFormation from a SAM template, by aws-sam-translator (what ``sam deploy`` submits).

    ``parameters``: values for the template's parameters, as ``--parameter-overrides`` gives
    them (SAM resolves a few properties from them, e.g. DeploymentPreference's Type).

    Raises:
        samtranslator.model.exceptions.InvalidDocumentException: the template is invalid SAM.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    # Offline: the region is given, and botocore must never ask the EC2 metadata service.
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    session = boto3.session.Session(region_name=region)
    translator = Translator(_OfflinePolicyLoader(), Parser(), boto_session=session)
    values = {"AWS::AccountId": "123456789012", **(parameters or {})}
    return translator.translate(copy.deepcopy(template), parameter_values=values)


def lint_cloudformation(template: dict, regions: Iterable[str] = LINT_REGIONS) -> list[str]:
    """cfn-lint's findings (errors, warnings and informational) on ``template``; [] when clean."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template), config=ManualArgs(regions=list(regions)))
    return [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches]


def validate_sam(path: Path = SAM_TEMPLATE) -> list[str]:
    """Problems found translating ``path`` and linting the result; [] when both pass."""
    from samtranslator.model.exceptions import InvalidDocumentException

    try:
        translated = translate_sam(as_packaged(load_sam_template(path)))
    except InvalidDocumentException as error:
        return [f"{path.name}: SAM: {cause.message}" for cause in error.causes]
    except ValueError as error:
        return [str(error)]
    return [f"{path.name}: cfn-lint: {finding}" for finding in lint_cloudformation(translated)]


# --- Kubernetes ---------------------------------------------------------------------------------


def kubernetes_resources(directory: Path = K8S_DIR) -> list[tuple[Path, dict]]:
    """(file, resource) for each resource in the directory's manifests (not the kustomization)."""
    return [
        (path, doc)
        for path in sorted(directory.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_yaml_documents(path)
    ]


def validate_kubernetes_resource(resource: dict, versions: Iterable[str] = KUBERNETES_VERSIONS) -> list[str]:
    """Strict schema errors of one core resource for each Kubernetes version; [] when valid."""
    name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(map(str, error.path)) or "(root)"
            problems.append(f"{name} (Kubernetes {version}): {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name} (Kubernetes {version}): {error}")
    return problems


def validate_kustomization(directory: Path = K8S_DIR) -> list[str]:
    """The kustomization lists exactly the manifests in ``directory``, each of which exists."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    problems = [f"kustomization.yaml lists {name}, which is missing" for name in sorted(listed - present)]
    problems += [f"kustomization.yaml does not list {name}" for name in sorted(present - listed)]
    return problems


def validate_kubernetes(directory: Path = K8S_DIR) -> list[str]:
    """Every resource under ``directory`` plus its kustomization; [] when all are valid."""
    problems = validate_kustomization(directory)
    for path, resource in kubernetes_resources(directory):
        problems += [f"{path.name}: {p}" for p in validate_kubernetes_resource(resource)]
    return problems


# --- KServe -------------------------------------------------------------------------------------


def _strict(schema: object) -> object:
    """Reject unknown fields wherever the CRD lists properties and does not preserve unknowns."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_to_schema(crd: dict, version: str = "v1beta1") -> dict:
    """The ``openAPIV3Schema`` of ``version`` in a CRD, without descriptions and ``status``."""

    def strip(node: object) -> object:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "description"}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema = strip(served["schema"]["openAPIV3Schema"])
    schema["properties"].pop("status", None)
    return schema


def kserve_validator(schema_path: Path = KSERVE_SCHEMA) -> jsonschema.Draft7Validator:
    """A validator for InferenceService objects (strict about unknown fields)."""
    schema = json.loads(gzip.decompress(schema_path.read_bytes()))
    schema = _strict(schema)
    # apiVersion/kind are plain strings in a CRD schema; pin them to what this CRD serves.
    schema["properties"]["apiVersion"] = {"const": "serving.kserve.io/v1beta1"}
    schema["properties"]["kind"] = {"const": "InferenceService"}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return jsonschema.Draft7Validator(schema)


def validate_inference_service(
    resource: dict, validator: jsonschema.Draft7Validator | None = None
) -> list[str]:
    """Schema errors of one InferenceService, then its canary settings; [] when valid."""
    validator = validator or kserve_validator()
    name = f"InferenceService/{resource.get('metadata', {}).get('name')}"
    problems = [
        f"{name}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(resource), key=lambda e: list(map(str, e.absolute_path)))
    ]
    return problems or [f"{name}: {p}" for p in canary_problems(resource)]


def canary_problems(resource: dict) -> list[str]:
    """What the CRD schema cannot say about ``canaryTrafficPercent`` (only "an integer" there):
    it is a share of requests, 0-100, and only the Serverless (Knative) deployment mode splits
    traffic between revisions (https://kserve.github.io/website/docs/model-serving/predictive-inference/rollout-strategies/canary)."""
    problems = []
    for component, spec in resource.get("spec", {}).items():
        percent = spec.get("canaryTrafficPercent") if isinstance(spec, dict) else None
        if percent is None:
            continue
        where = f"spec/{component}/canaryTrafficPercent"
        if isinstance(percent, int) and not 0 <= percent <= 100:
            problems.append(f"{where}: {percent} is not a percentage (0-100)")
        mode = resource.get("metadata", {}).get("annotations", {}).get("serving.kserve.io/deploymentMode")
        if mode not in (None, "Serverless"):
            problems.append(f"{where}: needs deploymentMode Serverless (traffic splitting), not {mode}")
    return problems


def validate_kserve(directory: Path = KSERVE_DIR) -> list[str]:
    """Every InferenceService in ``directory``'s manifests; [] when all are valid."""
    validator = kserve_validator()
    problems = []
    for path in sorted(directory.glob("*.yaml")):
        for resource in load_yaml_documents(path):
            problems += [f"{path.name}: {p}" for p in validate_inference_service(resource, validator)]
    return problems


def validate_all() -> dict[str, list[str]]:
    """Problems per manifest family; every list empty when everything is valid."""
    return {"sam": validate_sam(), "kubernetes": validate_kubernetes(), "kserve": validate_kserve()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--vendor-crd",
        type=Path,
        metavar="CRD_YAML",
        help="regenerate the vendored KServe schema from serving.kserve.io_inferenceservices.yaml",
    )
    args = parser.parse_args(argv)
    if args.vendor_crd:
        schema = crd_to_schema(yaml.safe_load(args.vendor_crd.read_text()))
        data = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
        KSERVE_SCHEMA.parent.mkdir(parents=True, exist_ok=True)
        KSERVE_SCHEMA.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        print(f"wrote {KSERVE_SCHEMA} ({len(data)} bytes of schema)")
        return 0
    status = 0
    for family, problems in validate_all().items():
        print(f"{family}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  {problem}")
        status |= bool(problems)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
