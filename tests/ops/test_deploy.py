"""deploy/: the Dockerfile, the Kubernetes manifests and the systemd units, parsed and checked."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
import yaml

from worker.config import load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"


def load(name: str) -> dict:
    docs = list(yaml.safe_load_all((K8S / name).read_text()))
    assert len(docs) == 1
    return docs[0]


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, comments and continuations removed."""
    lines = [ln.strip() for ln in (DEPLOY / "Dockerfile").read_text().splitlines()
             if not ln.lstrip().startswith("#")]
    joined = " ".join(lines).replace("\\ ", " ")
    out = []
    for part in joined.split(" "):
        if part.isupper() and part.isalpha():
            out.append((part, ""))
        elif out:
            out[-1] = (out[-1][0], (out[-1][1] + " " + part).strip())
    return [(k, v.split(" #", 1)[0].strip()) for k, v in out
            if k in {"FROM", "RUN", "USER", "ENTRYPOINT", "CMD", "COPY", "WORKDIR", "ENV"}]


def test_dockerfile_slim_base_non_root_console_script():
    """Slim Python base, pip install ., numeric non-root USER, entrypoint zuora-reaper, CMD plan."""
    steps = dockerfile()
    kinds = [k for k, _ in steps]
    base = dict(steps)["FROM"]
    assert base.startswith("python:3.1")
    assert base.endswith("-slim")
    assert any(k == "RUN" and "pip install ." in v for k, v in steps)
    user = [v for k, v in steps if k == "USER"][-1]
    assert user.split(":")[0].isdigit()
    assert user.split(":")[0] != "0"
    assert kinds.index("USER") > max(i for i, (k, _) in enumerate(steps) if k == "RUN")
    assert dict(steps)["ENTRYPOINT"] == '["zuora-reaper"]'
    assert dict(steps)["CMD"] == '["plan"]'  # the bare image never cancels


def test_cronjob_fields_that_matter():
    """Forbid overlap, a starting deadline, no pod retries, run with the ConfigMap config."""
    cj = load("cronjob.yaml")
    assert cj["apiVersion"] == "batch/v1"
    assert cj["kind"] == "CronJob"
    spec = cj["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 3600
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["args"][0] == "run"
    config_path = container["args"][container["args"].index("--config") + 1]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert config_path.startswith(mounts["config"]["mountPath"] + "/")
    assert volumes["config"]["configMap"]["name"] == load("configmap.yaml")["metadata"]["name"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert "emptyDir" in volumes["tmp"]
    secret = load("secret.example.yaml")
    [ref] = container["envFrom"]
    assert ref["secretRef"]["name"] == secret["metadata"]["name"]
    assert {"ZUORA_CLIENT_ID", "ZUORA_CLIENT_SECRET"} <= set(secret["stringData"])
    assert "env" not in container or all("value" not in e or "SECRET" not in e["name"]
                                         for e in container["env"])


def test_configmap_config_is_accepted_by_the_loader(tmp_path):
    """The ConfigMap's config.toml loads with the real loader; report and lock live in /tmp."""
    cm = load("configmap.yaml")
    cronjob = load("cronjob.yaml")
    args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    name = Path(args[args.index("--config") + 1]).name
    path = tmp_path / name
    path.write_text(cm["data"][name])
    settings = load_settings("run", {}, {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID,
                                         "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}, str(path))
    assert settings.target.base_url.startswith("https://")
    assert settings.output.log_format == "json"
    assert settings.output.report_file.startswith("/tmp/")
    assert settings.run.lock_file.startswith("/tmp/")
    active = cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert settings.pacing.deadline is not None
    assert settings.pacing.deadline < active


def test_systemd_service_is_a_hardened_oneshot_run():
    """Type=oneshot, ExecStart runs zuora-reaper run, secrets from an EnvironmentFile, hardened."""
    svc = unit("zuora-reaper.service")["Service"]
    assert svc["Type"] == "oneshot"
    argv = shlex.split(svc["ExecStart"])
    assert Path(argv[0]).name == "zuora-reaper"
    assert argv[1] == "run"
    assert "--config" in argv
    assert "${STATE_DIRECTORY}" in argv[argv.index("--report-file") + 1]
    assert svc["EnvironmentFile"].startswith("/etc/")
    assert svc.get("DynamicUser") == "yes" or svc.get("User") not in (None, "root")
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["StateDirectory"] == "zuora-reaper"
    assert "ZUORA_CLIENT_SECRET" not in svc.get("Environment", "")


def test_systemd_timer_is_persistent_and_jittered():
    """The timer has a calendar, catches up missed runs and spreads its start."""
    timer = unit("zuora-reaper.timer")
    section = timer["Timer"]
    assert section["OnCalendar"]
    assert section["Persistent"] == "true"
    assert section["RandomizedDelaySec"]
    assert section.get("Unit", "zuora-reaper.service") == "zuora-reaper.service"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.parametrize("name", ["cronjob.yaml", "configmap.yaml", "secret.example.yaml"])
def test_manifests_are_single_valid_documents(name):
    """Each manifest parses as one Kubernetes object with a name."""
    doc = load(name)
    assert doc["metadata"]["name"].startswith("zuora-reaper")
