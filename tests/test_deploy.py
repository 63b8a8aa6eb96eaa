"""deploy/ and the package: the Dockerfile and the lock, the kustomize base and overlays, the
systemd units (rated by systemd-analyze), and the package metadata, parsed and checked."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from worker import files
from worker.config import load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def load(name: str) -> dict:
    docs = list(yaml.safe_load_all((K8S / name).read_text()))
    assert len(docs) == 1
    return docs[0]


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


# ---------------------------------------------------------------- the image and the lock


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, comments and continuations removed."""
    lines = [ln for ln in (DEPLOY / "Dockerfile").read_text().splitlines()
             if not ln.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    steps = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            steps.append((word, " ".join(rest.split())))
    return steps


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for step in dockerfile():
        if step[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(step)
    return out


def test_dockerfile_is_multi_stage_on_a_base_pinned_by_digest():
    """Two stages on one base: python:<CI's Python>-slim pinned by its sha256 digest."""
    build, runtime = stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    args = dict(v.split("=", 1) for k, v in dockerfile() if k == "ARG" and "=" in v)
    image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:\d+\.\d+-slim@sha256:[0-9a-f]{64}", image), image
    minor = image.split(":")[1].split("-")[0]
    assert minor == f"{sys.version_info.major}.{sys.version_info.minor}"  # CI's own Python
    assert f"Programming Language :: Python :: {minor}" in PYPROJECT["project"]["classifiers"]


def test_dockerfile_installs_from_the_hashed_lock_and_runs_non_root():
    build, runtime = stages()
    runs = " ".join(v for k, v in build if k == "RUN")
    assert "--require-hashes" in runs
    assert "-r requirements/runtime.txt" in runs
    assert ("COPY", "requirements/runtime.txt requirements/build.txt requirements/") in build
    assert "pip wheel --no-deps --no-build-isolation" in runs  # a wheel, by the pinned backend
    assert "--require-hashes --no-deps -r requirements/build.txt" in runs
    assert not [v for k, v in runtime if k == "RUN" and "pip" in v]  # nothing resolved later
    assert ("COPY", "--from=build /opt/zuora-reaper /opt/zuora-reaper") in runtime
    user = [v for k, v in runtime if k == "USER"][-1]
    assert user.split(":")[0].isdigit()
    assert user.split(":")[0] != "0"
    kinds = [k for k, _ in runtime]
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    assert dict(runtime)["ENTRYPOINT"] == '["zuora-reaper"]'
    assert dict(runtime)["CMD"] == '["plan"]'  # the bare image never cancels
    labels = " ".join(v for k, v in runtime if k == "LABEL")
    for name in ("source", "version", "revision"):
        assert f"org.opencontainers.image.{name}=" in labels, name


def _pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a pip-compile lock with hashes."""
    pins = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            spec, *rest = line.split()
            name, version = spec.split("==")
            hashes = frozenset(h.split(":", 1)[1] for h in rest if h.startswith("--hash="))
            pins[name.lower()] = (version, hashes)
    return pins


def test_the_lock_ci_installs_pins_what_the_image_installs():
    """runtime.txt (the image) and ci.txt (CI) are hashed and agree on every runtime pin;
    .ci/run installs ci.txt with --require-hashes; lock.sh regenerates both."""
    runtime, ci = _pins(LOCKS / "runtime.txt"), _pins(LOCKS / "ci.txt")
    assert runtime
    assert all(hashes for _v, hashes in runtime.values())
    assert all(hashes for _v, hashes in ci.values())
    for name, pin in runtime.items():
        assert ci.get(name) == pin, name
    assert {_name(d) for d in PYPROJECT["project"]["dependencies"]} <= set(runtime)
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {_name(d) for d in [*extras["test"], *extras["dev"]]} <= set(ci)
    assert "pip install --quiet --require-hashes -r requirements/ci.txt" in \
        (ROOT / ".ci" / "run").read_text()
    build = _pins(LOCKS / "build.txt")  # the build backend: pinned as CI pins it, hashed
    assert {_name(r) for r in PYPROJECT["build-system"]["requires"]} == set(build)
    for name, pin in build.items():
        assert pin[1], name
        assert ci.get(name) == pin, name
    assert (LOCKS / "lock.sh").stat().st_mode & 0o111


def test_package_metadata_is_complete_and_extras_do_not_repeat():
    project = PYPROJECT["project"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["license"] == "MIT"
    assert len(project["classifiers"]) >= 5
    extras = project["optional-dependencies"]
    assert set(extras) == {"test", "dev"}  # no "metrics" extra repeating a core dependency
    core = {_name(d) for d in project["dependencies"]}
    for name, deps in extras.items():
        assert not {_name(d) for d in deps} & core, name
    assert not {"ruff", "mypy"} & {_name(d) for d in extras["test"]}
    assert {"ruff", "mypy"} <= {_name(d) for d in extras["dev"]}
    from worker import __version__
    from worker.http import USER_AGENT

    assert __version__ == project["version"]  # from the package metadata, not hard-coded
    assert USER_AGENT.startswith(f"zuora-reaper/{__version__} ")
    assert "://" not in USER_AGENT  # no made-up URL


# ---------------------------------------------------------------- Kubernetes (kustomize)


def test_cronjob_fields_that_matter():
    """Forbid overlap, a starting deadline, no pod retries, run with the ConfigMap config, the
    report on stdout as JSON, a token-less ServiceAccount."""
    cj = load("base/cronjob.yaml")
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
    assert pod["serviceAccountName"] == load("base/serviceaccount.yaml")["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False
    assert load("base/serviceaccount.yaml")["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["args"][0] == "plan"  # the first stage: an overlay switches it to run
    assert container["args"][-2:] == ["--output", "json"]
    config_path = container["args"][container["args"].index("--config") + 1]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert config_path.startswith(mounts["config"]["mountPath"] + "/")
    assert volumes["config"]["configMap"]["name"] == \
        load("base/configmap.yaml")["metadata"]["name"]
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


def test_configmap_config_is_accepted_by_the_loader(tmp_path, monkeypatch):
    """The ConfigMap's config.toml loads with the real loader; the report and the lock live on
    mounted volumes (which exist in the pod: the loader is told so, as it would find them)."""
    cm, cronjob = load("base/configmap.yaml"), load("base/cronjob.yaml")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    name = Path(args[args.index("--config") + 1]).name
    path = tmp_path / name
    path.write_text(cm["data"][name])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    real_isdir = os.path.isdir
    monkeypatch.setattr(files.os.path, "isdir", lambda p: p in mounts or real_isdir(p))
    settings = load_settings("run", {}, {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID,
                                         "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}, str(path))
    assert settings.target.base_url.startswith("https://")
    assert settings.output.log_format == "json"
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(settings.output.report_file).parent) in mounted
    assert settings.run.lock_file.startswith("/tmp/")
    active = cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert settings.pacing.deadline is not None
    assert settings.pacing.deadline < active


def _kustomize(overlay: str) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the kustomize overlays are not rendered here")
    out = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=120, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize(("overlay", "command", "namespace"), [
    ("sandbox", "plan", "zuora-reaper-sandbox"),
    ("production", "plan", "zuora-reaper"),
    ("production-pvc", "plan", "zuora-reaper"),
])
def test_kustomize_overlays_render_what_the_readme_promises(overlay, command, namespace):
    docs = _kustomize(overlay)
    kinds = {d["kind"]: d for d in docs}
    assert {"CronJob", "ConfigMap", "ServiceAccount"} <= set(kinds)
    assert "Secret" not in kinds  # only referenced: it comes from your secret store
    assert {d["metadata"]["namespace"] for d in docs} == {namespace}
    cj = kinds["CronJob"]
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    job = cj["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    assert kinds["ServiceAccount"]["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert re.fullmatch(r"[\w./-]+@sha256:[0-9a-f]{64}", container["image"]), container["image"]
    assert container["args"][0] == command
    assert container["args"][-2:] == ["--output", "json"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config = tomllib.loads(kinds["ConfigMap"]["data"]["config.toml"])
    lock = config["run"]["lock_file"]
    if overlay == "production-pvc":
        claim = volumes["reports"]["persistentVolumeClaim"]["claimName"]
        assert claim == kinds["PersistentVolumeClaim"]["metadata"]["name"]
        assert kinds["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert lock.startswith(mounts["reports"] + "/")  # every pod takes the one lock
    else:
        assert lock.startswith("/tmp/")  # per pod: the README says so
        assert "emptyDir" in volumes["reports"]


@pytest.mark.parametrize("name", ["base/cronjob.yaml", "base/configmap.yaml",
                                  "base/serviceaccount.yaml", "secret.example.yaml"])
def test_manifests_are_single_valid_documents(name):
    """Each manifest parses as one Kubernetes object with a name."""
    doc = load(name)
    assert doc["metadata"]["name"].startswith("zuora-reaper")


# ---------------------------------------------------------------- systemd


def test_systemd_service_is_a_hardened_oneshot_run():
    """Type=oneshot, ExecStart runs the venv's zuora-reaper (plan first: the README's
    drop-in switches it to run), secrets by LoadCredential= and *_FILE, an OnFailure= handler.
    The venv is the one the README's systemd steps make (Debian refuses pip into its Python,
    and ProtectHome=yes hides a pipx install)."""
    parsed = unit("zuora-reaper.service")
    svc = parsed["Service"]
    assert svc["Type"] == "oneshot"
    argv = shlex.split(svc["ExecStart"])
    assert argv[0] == "/opt/zuora-reaper/bin/zuora-reaper"
    assert argv[1] == "plan"
    steps = (DEPLOY / "README.md").read_text().split("## systemd", 1)[1]
    assert "python3 -m venv /opt/zuora-reaper\n" in steps
    assert "/opt/zuora-reaper/bin/pip install --require-hashes --no-deps -r " \
           "requirements/runtime.txt" in steps
    assert "pip install zuora-reaper" not in steps
    assert "--config" in argv
    assert "${STATE_DIRECTORY}" in argv[argv.index("--report-file") + 1]
    assert svc.get("DynamicUser") == "yes" or svc.get("User") not in (None, "root")
    assert "EnvironmentFile" not in svc
    text = (DEPLOY / "systemd" / "zuora-reaper.service").read_text()
    assert "LoadCredential=client_secret:/etc/zuora-reaper/client_secret" in text
    assert "Environment=ZUORA_CLIENT_SECRET_FILE=%d/client_secret" in text
    assert parsed["Unit"]["OnFailure"] == "zuora-reaper-failure@%n.service"
    assert "%i" in unit("zuora-reaper-failure@.service")["Service"]["ExecStart"]


@pytest.mark.parametrize("unit", ["zuora-reaper.service", "zuora-reaper-failure@.service"])
def test_systemd_exposure_is_at_most_1_5(unit):
    """``systemd-analyze security --offline`` rates each unit 1.5 or lower (the OnFailure=
    example was 8.4)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs Debian's systemd)")
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit],
                         cwd=DEPLOY / "systemd", capture_output=True, text=True, timeout=60,
                         check=False)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
    assert found, out.stdout + out.stderr
    assert float(found.group(1)) <= 1.5, out.stdout


def test_credential_files_are_what_the_loader_reads(tmp_path):
    """%d/client_id and %d/client_secret, as LoadCredential= lays them out, are read."""
    (tmp_path / "client_id").write_text(DEMO_CLIENT_ID + "\n")
    (tmp_path / "client_secret").write_text(DEMO_CLIENT_SECRET + "\n")
    env = {"ZUORA_CLIENT_ID_FILE": str(tmp_path / "client_id"),
           "ZUORA_CLIENT_SECRET_FILE": str(tmp_path / "client_secret")}
    settings = load_settings("plan", {"target.environment": "us-sandbox"}, env)
    assert settings.credentials.client_secret == DEMO_CLIENT_SECRET
    assert settings.credentials.client_id == DEMO_CLIENT_ID


def test_systemd_timer_is_persistent_and_jittered():
    """The timer has a calendar, catches up missed runs and spreads its start."""
    timer = unit("zuora-reaper.timer")
    section = timer["Timer"]
    assert section["OnCalendar"]
    assert section["Persistent"] == "true"
    assert section["RandomizedDelaySec"]
    assert section.get("Unit", "zuora-reaper.service") == "zuora-reaper.service"
    assert timer["Install"]["WantedBy"] == "timers.target"


FAKE_KUBECTL = r"""#!/usr/bin/env bash
# A stand-in kubectl: one CronJob and one lock ConfigMap, their state in files ($KDIR).
echo "$*" >> "$KDIR/calls"
fails() {  # the first $1 calls of kind $2 fail
  local n; n=$(cat "$KDIR/fail-$2" 2>/dev/null || echo 0); echo $((n + 1)) > "$KDIR/fail-$2"
  [ "$n" -lt "$1" ]
}
case "$*" in
  *"create configmap"*)
    if [ -e "$KDIR/lock" ]; then echo 'Error from server (AlreadyExists): exists' >&2; exit 1; fi
    echo "$*" > "$KDIR/lock" ;;
  *"delete configmap"*) rm -f "$KDIR/lock" ;;
  *"patch configmap"*) ;;
  *"jsonpath={.spec.suspend}"*) cat "$KDIR/suspend" ;;
  *"patch cronjob"*)
    if [ -n "${RESTORE_FAILS:-}" ] && [[ "$*" != *'"suspend":true'* ]]; then exit 1; fi
    v=false; [[ "$*" == *'"suspend":true'* ]] && v=true; echo "$v" > "$KDIR/suspend" ;;
  *"jsonpath={.status.active[*].name}"*)
    fails "${FAIL_ACTIVE_GETS:-0}" active && exit 1
    n=$(cat "$KDIR/polls" 2>/dev/null || echo 0); echo $((n + 1)) > "$KDIR/polls"
    [ "$n" -lt "${ACTIVE_POLLS:-1}" ] && printf 'zuora-reaper-28800' ;;
  *"create job"*) [ -n "${CREATE_FAILS:-}" ] && exit 1; echo created > "$KDIR/job" ;;
  *"jsonpath={.status.succeeded}"*) fails "${FAIL_JOB_GETS:-0}" job && exit 1; printf '1/' ;;
esac
exit 0
"""


def _kubectl(tmp_path: Path, suspended: str = "false") -> dict[str, str]:
    """A stand-in kubectl on PATH (its state in tmp_path), as the environment of a run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    (tmp_path / "suspend").write_text(suspended + "\n")
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "KDIR": str(tmp_path), "RUN_ONCE_POLL_S": "0"}


def _run_once(env: dict[str, str], **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["bash", str(K8S / "run-once.sh"), "zuora-reaper"],
                            env={**env, **extra}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Its exit code and stderr, its pipes closed."""
    _out, err = proc.communicate(timeout=30)
    return proc.returncode, err


def _state(tmp_path: Path) -> tuple[str, bool]:
    """(the CronJob's suspend, whether the run-once lock is left)."""
    return (tmp_path / "suspend").read_text().strip(), (tmp_path / "lock").exists()


def test_a_manual_run_waits_for_the_scheduled_one_and_puts_the_schedule_back(tmp_path):
    """`kubectl create job --from=cronjob/...` alone runs beside a scheduled job (Forbid does
    not apply to it, the lock is per pod): the recipe takes its lock, suspends the CronJob,
    waits, runs, then puts it back as it was."""
    code, err = _finish(_run_once(_kubectl(tmp_path)))
    assert code == 0, err
    calls = (tmp_path / "calls").read_text().splitlines()
    order = [next(i for i, c in enumerate(calls) if words in c) for words in (
        "create configmap zuora-reaper-run-once", "jsonpath={.spec.suspend}",
        '"suspend":true', ".status.active", "create job --from=cronjob/zuora-reaper")]
    assert order == sorted(order)
    assert len([c for c in calls if ".status.active" in c]) == 2  # the scheduled job waited
    assert _state(tmp_path) == ("false", False)


@pytest.mark.parametrize(("suspended", "extra", "code", "after"), [
    ("true", {}, 0, ("true", False)),  # a suspended schedule stays suspended
    ("false", {"CREATE_FAILS": "1"}, 5, ("false", False)),  # kubectl failed: put back
    ("false", {"RESTORE_FAILS": "1"}, 4, ("true", True)),  # said, with the commands to run
])
def test_the_manual_run_restores_the_schedule_however_it_ends(tmp_path, suspended, extra,
                                                              code, after):
    got, err = _finish(_run_once(_kubectl(tmp_path, suspended), **extra))
    assert got == code, err
    assert _state(tmp_path) == after
    if code == 4:
        assert "patch cronjob zuora-reaper" in err


def test_a_failed_kubectl_read_is_tried_again_never_taken_as_an_answer(tmp_path):
    """A failing `get` while waiting read as 'no job active' would start the manual job beside
    the scheduled one; a failing `get` of the manual job read as 'failed' would resume the
    schedule beside it. Both are tried again."""
    env = _kubectl(tmp_path)
    code, err = _finish(_run_once(env, FAIL_ACTIVE_GETS="2", ACTIVE_POLLS="0",
                                  FAIL_JOB_GETS="2"))
    assert code == 0, err
    calls = (tmp_path / "calls").read_text().splitlines()
    create = next(i for i, c in enumerate(calls) if "create job" in c)
    assert len([c for c in calls[:create] if ".status.active" in c]) == 3  # 2 failed, 1 read
    assert len([c for c in calls if ".status.succeeded" in c]) == 3


def test_two_manual_runs_never_leave_the_schedule_suspended(tmp_path):
    """A second run-once while one holds the lock is refused (exit 3): it used to read the
    first one's suspension as the schedule's own and 'restore' it, suspended for good."""
    env = _kubectl(tmp_path)
    first = _run_once(env, ACTIVE_POLLS="40", RUN_ONCE_POLL_S="0.05")
    deadline = time.monotonic() + 10
    while not (tmp_path / "lock").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _finish(_run_once(env))[0] == 3
    assert _finish(first)[0] == 0
    assert _state(tmp_path) == ("false", False)
    assert (tmp_path / "job").exists()


def test_an_interrupted_manual_run_puts_the_schedule_back(tmp_path):
    env = _kubectl(tmp_path)
    proc = _run_once(env, ACTIVE_POLLS="1000", RUN_ONCE_POLL_S="0.05")
    deadline = time.monotonic() + 10
    calls = tmp_path / "calls"
    while not (calls.exists() and '"suspend":true' in calls.read_text()) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert _finish(proc)[0] == 143
    assert _state(tmp_path) == ("false", False)


def test_production_starts_as_plan_and_one_component_switches_it_to_run(tmp_path):
    """The first schedule of every overlay plans (never cancels); production becomes run with
    one documented line (components: [../../components/run])."""
    base = yaml.safe_load((K8S / "base" / "cronjob.yaml").read_text())
    container = base["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "plan"
    for overlay in ("production", "production-pvc"):
        text = (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
        assert "args/0" not in text, overlay  # nothing in the overlay changes the command
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "- ../../components/run" in readme
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the switched overlay is not rendered here")
    tree = tmp_path / "kubernetes"
    shutil.copytree(K8S, tree)
    switched = tree / "overlays" / "production" / "kustomization.yaml"  # the documented edit
    switched.write_text(switched.read_text() + "components:\n  - ../../components/run\n")
    for path, command in ((K8S / "overlays" / "production", "plan"),
                          (switched.parent, "run")):
        out = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True,
                             text=True, check=True).stdout
        cron = next(d for d in yaml.safe_load_all(out) if d["kind"] == "CronJob")
        spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert spec["containers"][0]["args"][0] == command, path
