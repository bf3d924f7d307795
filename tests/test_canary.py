"""Canary rollouts in the deployment manifests, checked with the validators ``infra.validate``
uses (aws-sam-translator + cfn-lint, KServe's CRD schema), and the rollback alarm checked
against the EMF lines the service really writes.
"""

from __future__ import annotations

import copy

import pytest

from infra import validate
from service.observability.emf import NAMESPACE, EmfWriter
from service.observability.metrics import RequestRecord
from service.observability.stages import StageTimes


def _of_type(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_deploys_shift_the_live_alias_with_codedeploy(translated: dict) -> None:
    (alias,) = _of_type(translated, "AWS::Lambda::Alias").values()
    assert alias["Properties"]["Name"] == "live"
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    (group_id, group) = next(iter(_of_type(translated, "AWS::CodeDeploy::DeploymentGroup").items()))
    assert update["DeploymentGroupName"] == {"Ref": group_id}
    properties = group["Properties"]
    config = properties["DeploymentConfigName"]["Fn::Sub"]
    assert config == ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": "Canary10Percent5Minutes"}]
    assert properties["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in properties["AutoRollbackConfiguration"]["Events"]
    alarms = [a["Name"] for a in properties["AlarmConfiguration"]["Alarms"]]
    assert alarms == [{"Ref": "CanaryFunctionErrorsAlarm"}, {"Ref": "Canary5xxRateAlarm"}]
    # The HTTP API reaches the function through the alias, so the shift applies to its traffic.
    route = translated["Resources"]["HttpApi"]["Properties"]["Body"]["paths"]["$default"]
    assert (
        "${EdgeInferFunctionAliaslive}"
        in route["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    )
    assert validate.lint_cloudformation(translated) == []


def test_deployment_type_parameter_is_what_codedeploy_gets(sam: dict) -> None:
    allowed = sam["Parameters"]["DeploymentType"]["AllowedValues"]
    assert "AllAtOnce" in allowed and "Canary10Percent5Minutes" in allowed
    linear = validate.translate_sam(
        validate.as_packaged(sam), parameters={"DeploymentType": "Linear10PercentEvery1Minute"}
    )
    (group,) = _of_type(linear, "AWS::CodeDeploy::DeploymentGroup").values()
    assert group["Properties"]["DeploymentConfigName"]["Fn::Sub"][1] == {
        "ConfigName": "Linear10PercentEvery1Minute"
    }


def test_rollback_alarms_watch_the_new_version_only(translated: dict) -> None:
    (version_id,) = _of_type(translated, "AWS::Lambda::Version")
    new_version = {"Fn::GetAtt": [version_id, "Version"]}
    errors = translated["Resources"]["CanaryFunctionErrorsAlarm"]["Properties"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert {"Name": "ExecutedVersion", "Value": new_version} in errors["Dimensions"]
    rate = translated["Resources"]["Canary5xxRateAlarm"]["Properties"]
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m}
    for metric in stats.values():
        assert {"Name": "FunctionVersion", "Value": new_version} in metric["Dimensions"]
    assert rate["Threshold"] == {"Ref": "RollbackErrorRatePercent"}
    assert rate["TreatMissingData"] == "notBreaching"


def test_rollback_alarm_reads_the_metrics_the_service_writes(sam: dict) -> None:
    """The alarm's namespace, metric names and dimension names are those of the EMF lines."""
    function = sam["Resources"]["EdgeInferFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    assert variables["EDGE_EMF"] == "true"
    namespace = NAMESPACE
    line = EmfWriter(NAMESPACE, "fn", "3").document(
        RequestRecord("POST", "/predict", 503, 0.01), StageTimes()
    )
    directives = {
        (d["Namespace"], tuple(dims), m["Name"])
        for d in line["_aws"]["CloudWatchMetrics"]
        for dims in d["Dimensions"]
        for m in d["Metrics"]
    }
    alarm = sam["Resources"]["Canary5xxRateAlarm"]["Properties"]
    for query in alarm["Metrics"]:
        if "MetricStat" not in query:
            continue
        metric = query["MetricStat"]["Metric"]
        dims = tuple(d["Name"] for d in metric["Dimensions"])
        assert (namespace, dims, metric["MetricName"]) in directives
    assert line["Errors5xx"] == 1 and line["Requests"] == 1


# --- KServe -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inference_service() -> dict:
    return validate.load_yaml_documents(validate.KSERVE_DIR / "inferenceservice.yaml")[0]


def test_inference_service_rolls_out_as_a_canary(inference_service: dict) -> None:
    assert inference_service["spec"]["predictor"]["canaryTrafficPercent"] == 10
    annotations = inference_service["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
    assert validate.validate_inference_service(inference_service) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda isvc: isvc["spec"]["predictor"].__setitem__("canaryTrafficPercent", "ten"), "is not of type"),
        (lambda isvc: isvc["spec"]["predictor"].__setitem__("canaryTrafficPercent", 150), "not a percentage"),
        (lambda isvc: isvc["spec"]["predictor"].__setitem__("canaryTrafficPercent", -1), "not a percentage"),
        (
            lambda isvc: isvc["metadata"]["annotations"].__setitem__(
                "serving.kserve.io/deploymentMode", "RawDeployment"
            ),
            "needs deploymentMode Serverless",
        ),
    ],
)
def test_kserve_validation_catches_a_bad_canary(inference_service: dict, mutate, expected: str) -> None:
    broken = copy.deepcopy(inference_service)
    mutate(broken)
    problems = validate.validate_inference_service(broken)
    assert problems and any(expected in p for p in problems), problems
