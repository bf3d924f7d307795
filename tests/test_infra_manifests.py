"""The deployment manifests pass the validators their ecosystems use, and those validators
catch broken manifests (each check is shown failing on a manifest broken on purpose).

``make validate-infra`` runs ``python -m infra.validate`` (tested here as a command too) and
renders serverless.yml with the Serverless Framework; these tests need neither npm nor network.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from infra import validate
from infra.requirements import PROJECT_ROOT


@pytest.fixture(scope="module")
def deployment() -> dict:
    return next(r for _, r in validate.kubernetes_resources() if r["kind"] == "Deployment")


@pytest.fixture(scope="module")
def inference_service() -> dict:
    return validate.load_yaml_documents(validate.KSERVE_DIR / "inferenceservice.yaml")[0]


def test_validate_command_passes_on_the_shipped_manifests() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.validate"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["sam: ok", "kubernetes: ok", "kserve: ok"]


# --- SAM ----------------------------------------------------------------------------------------


def test_sam_translates_to_the_resources_a_deployment_needs(translated: dict) -> None:
    resources = translated["Resources"]
    function = resources["EdgeInferFunction"]["Properties"]
    assert function["Handler"] == "service.lambda_handler.handler"
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    assert function["ReservedConcurrentExecutions"]["Fn::If"][0] == "HasReservedConcurrency"
    assert function["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionLogGroup"}}
    types = {r["Type"] for r in resources.values()}
    assert {
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::ApiGatewayV2::Api",
        "AWS::Lambda::Url",
    } <= types
    # The HTTP API's $default route (every method, every path) -> the live alias, payload 2.0.
    route = resources["HttpApi"]["Properties"]["Body"]["paths"]["$default"]["x-amazon-apigateway-any-method"]
    integration = route["x-amazon-apigateway-integration"]
    assert integration["payloadFormatVersion"] == "2.0" and route["isDefaultRoute"] is True
    assert "${EdgeInferFunctionAliaslive}" in integration["uri"]["Fn::Sub"]
    assert resources["FunctionUrl"]["Condition"] == "HasFunctionUrl"
    assert "ApiUrl" in translated["Outputs"] and translated["Outputs"]["FunctionUrl"]["Condition"]


def test_sam_translation_fails_on_an_invalid_template(sam: dict) -> None:
    broken = copy.deepcopy(sam)
    broken["Resources"]["EdgeInferFunction"]["Properties"]["Events"]["CatchAll"]["Type"] = "HttpApiX"
    from samtranslator.model.exceptions import InvalidDocumentException

    with pytest.raises(InvalidDocumentException):
        validate.translate_sam(validate.as_packaged(broken))


def test_cfn_lint_passes_the_translation_and_flags_a_bad_one(translated: dict) -> None:
    assert validate.lint_cloudformation(translated) == []
    broken = copy.deepcopy(translated)
    broken["Resources"]["EdgeInferFunction"]["Properties"]["Runtime"] = "python2.7"
    broken["Resources"]["EdgeInferFunction"]["Properties"]["MemorySize"] = 100_000
    findings = validate.lint_cloudformation(broken)
    assert any(f.startswith("E") and "python2.7" in f for f in findings), findings
    assert any("100000" in f for f in findings), findings


# --- Kubernetes ---------------------------------------------------------------------------------


def test_every_kubernetes_manifest_is_valid_and_listed() -> None:
    kinds = {r["kind"] for _, r in validate.kubernetes_resources()}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert validate.validate_kubernetes() == []


def test_deployment_follows_the_sizing_and_shutdown_rules(deployment: dict) -> None:
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    threads = next(e for e in container["env"] if e["name"] == "EDGE_INTRA_OP_THREADS")
    assert threads["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 30
    graceful = int(next(e["value"] for e in container["env"] if e["name"] == "GRACEFUL_SHUTDOWN_SECONDS"))
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + graceful
    # Memory: the largest measured single-model RSS (ResNet50, 183 MB) fits the request twice over.
    assert container["resources"]["requests"]["memory"] == "512Mi"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "replicas"), "two", "is not of type"),
        (
            ("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"),
            "http",
            "is not of type",
        ),
        (("spec", "template", "spec", "containers", 0, "livenessProbe", "httpGett"), {}, "Additional"),
    ],
)
def test_kubernetes_validation_fails_on_an_invalid_deployment(
    deployment: dict, path: tuple, value: object, expected: str
) -> None:
    broken = copy.deepcopy(deployment)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    problems = validate.validate_kubernetes_resource(broken)
    assert len(problems) == len(validate.KUBERNETES_VERSIONS), problems
    assert all(expected in p for p in problems), problems


def test_kustomization_must_list_every_manifest(tmp_path) -> None:
    for path in validate.K8S_DIR.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    kustomization["resources"].remove("pdb.yaml")
    kustomization["resources"].append("missing.yaml")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    assert validate.validate_kustomization(tmp_path) == [
        "kustomization.yaml lists missing.yaml, which is missing",
        "kustomization.yaml does not list pdb.yaml",
    ]


# --- KServe -------------------------------------------------------------------------------------


def test_inference_service_is_valid_against_kserve_crd(inference_service: dict) -> None:
    assert validate.validate_kserve() == []
    predictor = inference_service["spec"]["predictor"]
    assert predictor["minReplicas"] == 0 and predictor["scaleMetric"] == "concurrency"
    assert predictor["containers"][0]["ports"][0]["containerPort"] == 8080
    assert predictor["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # KServe reads a custom predictor's protocol version from its PROTOCOL variable.
    assert {"name": "PROTOCOL", "value": "v2"} in predictor["containers"][0]["env"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda isvc: isvc["spec"]["predictor"].__setitem__("scaleMetric", "latency"), "is not one of"),
        (lambda isvc: isvc["spec"]["predictor"].__setitem__("minReplicas", "zero"), "is not of type"),
        (lambda isvc: isvc["spec"]["predictor"].__setitem__("scaleTargett", 4), "Additional properties"),
        (lambda isvc: isvc["spec"]["predictor"]["containers"][0].pop("name"), "'name' is a required"),
        (lambda isvc: isvc.__setitem__("kind", "InferenceServices"), "was expected"),
    ],
)
def test_kserve_validation_fails_on_an_invalid_inference_service(
    inference_service: dict, mutate, expected: str
) -> None:
    broken = copy.deepcopy(inference_service)
    mutate(broken)
    problems = validate.validate_inference_service(broken)
    assert problems and any(expected in p for p in problems), problems
