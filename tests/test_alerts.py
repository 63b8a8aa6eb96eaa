"""The shipped alert rules and dashboard: valid, tested with promtool, one source for plain
Prometheus and the Operator, and naming only metrics the job really emits."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "zuora-reaper.rules.yml"
OPERATOR = ROOT / "deploy" / "kubernetes" / "components" / "prometheus-rule"
DASHBOARD = ROOT / "deploy" / "grafana" / "zuora-reaper.json"
METRIC = re.compile(r"\bzuora_reaper_[a-z_]+\b")


def _promtool(*args: str) -> str:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (.ci/run installs Debian's prometheus)")
    proc = subprocess.run(["promtool", *args], cwd=PROM, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_rules_pass_promtool_check():
    assert "SUCCESS" in _promtool("check", "rules", RULES.name)


def test_each_alert_fires_and_stays_silent_as_its_promtool_tests_say():
    """deploy/prometheus/zuora-reaper.rules.test.yml: each alert on series that should fire
    it and on series that should not."""
    assert "SUCCESS" in _promtool("test", "rules", "zuora-reaper.rules.test.yml")


def test_every_alert_has_a_test_a_severity_and_a_runbook_section():
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert len(alerts) >= 7
    tested = (PROM / "zuora-reaper.rules.test.yml").read_text()
    readme = (ROOT / "deploy" / "README.md").read_text()
    for name, rule in alerts.items():
        assert f"alertname: {name}" in tested, name
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"#### Alert: {name}\n" in readme, name  # GitHub's anchor of that heading
        assert anchor == f"alert-{name.lower()}", name


def test_the_operators_rule_holds_the_same_groups():
    """One source: the PrometheusRule committed is what make_prometheusrule.py makes from the
    plain rules file (run it after changing the rules)."""
    made = runpy.run_path(str(PROM / "make_prometheusrule.py"))["prometheus_rule"]()
    rule = yaml.safe_load((OPERATOR / "prometheusrule.yaml").read_text())
    assert rule == made
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_the_component_and_the_dashboard_render_with_kustomize(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the components are not rendered here")
    tree = tmp_path / "kubernetes"
    shutil.copytree(ROOT / "deploy" / "kubernetes", tree)
    overlay = tree / "overlays" / "production" / "kustomization.yaml"
    overlay.write_text(overlay.read_text() + "components:\n  - ../../components/prometheus-rule\n")
    out = subprocess.run(["kubectl", "kustomize", str(overlay.parent)], capture_output=True,
                         text=True, check=True).stdout
    kinds = {d["kind"]: d for d in yaml.safe_load_all(out) if d}
    assert kinds["PrometheusRule"]["metadata"]["namespace"] == "zuora-reaper"
    out = subprocess.run(["kubectl", "kustomize", str(DASHBOARD.parent)], capture_output=True,
                         text=True, check=True).stdout
    [cm] = [d for d in yaml.safe_load_all(out) if d]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["zuora-reaper.json"]) == json.loads(DASHBOARD.read_text())


def test_the_dashboard_has_its_panels_each_with_a_query():
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    assert len(panels) >= 6
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
    titles = " ".join(p["title"].lower() for p in panels)
    for words in ("exit code", "since the last success", "listed", "throttling",
                  "phase", "report type"):
        assert words in titles, words


def test_every_metric_the_rules_and_dashboard_name_is_one_a_job_emits(emu_thread, cli,
                                                                      tmp_path, fast):
    """Read from a real metrics file written by real jobs (not from a list in the test): a
    clean one, then one whose cancel fails (the file keeps the last success)."""
    emu = emu_thread(runs=0, poison_ids={"bad"})
    emu.add_run(status="STARTED", age_s=7200)
    metrics = tmp_path / "m.prom"
    args = ("run", "--older-than", "1h", "--metrics-file", str(metrics), "--max-attempts", "1")
    assert cli(emu, *args, *fast).code == 0
    emu.add_run(run_id="bad", status="STARTED", age_s=7200)
    assert cli(emu, *args, *fast).code == 1
    emitted = set(METRIC.findall(metrics.read_text()))
    named = set(METRIC.findall(RULES.read_text())) | set(METRIC.findall(DASHBOARD.read_text()))
    assert named
    assert named <= emitted, named - emitted
