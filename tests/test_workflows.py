"""The GitHub workflows, the project's and those `digest init` writes, judged by tools others
wrote (actionlint, with shellcheck for the scripts; zizmor, offline) and by GitHub's rules that
no linter knows: a push made with a workflow's own token starts no workflow, so the nightly
must publish its post itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest import DISTRIBUTION, __version__
from digest.blog.init_blog import BLOG_FILES, init_blog
from tests.conftest import REPO, missing

# A remote action pinned to a commit, with the version it is as a comment (what Dependabot
# updates): "owner/repo[/path]@<40 hex> # vX.Y.Z".
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


def tool(name: str) -> str:
    """The dev extra's tool, or a skip (a failure under DIGEST_REQUIRE_WORKFLOW_TOOLS=1, as in
    .ci/run)."""
    found = shutil.which(name)
    if found is None:
        missing(
            f"{name} is not installed (pip install -e '.[dev]')", "DIGEST_REQUIRE_WORKFLOW_TOOLS"
        )
    return found


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh blog, in git as it is on GitHub (actionlint then checks the calls between its
    workflows)."""
    folder = tmp_path_factory.mktemp("blog")
    init_blog(folder)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def workflows_of(root: Path) -> dict[str, dict[Any, Any]]:
    return {
        path.name: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted((root / ".github" / "workflows").glob("*.yml"))
    }


def on(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key "on" as True.
    triggers = workflow.get("on", workflow.get(True))
    return triggers if isinstance(triggers, dict) else {name: None for name in triggers}


def actionlint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-oneline", "-no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def zizmor(root: Path) -> list[dict[str, Any]]:
    """zizmor's findings of medium or high severity over the folder's workflows and
    dependabot.yml, offline."""
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--format", "json", "--min-severity", "medium", "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 11, 12, 13, 14), result.stderr  # 1x: findings by severity
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def shown(findings: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{finding['ident']} ({finding['determinations']['severity']}): {finding['desc']}"
        for finding in findings
    )


# --- actionlint and zizmor ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["project", "blog"])
def test_actionlint_finds_nothing(where: str, blog: Path) -> None:
    tool("shellcheck")  # without it actionlint would not look inside the scripts
    result = actionlint(REPO if where == "project" else blog)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_actionlint_fails_on_a_node20_action(tmp_path: Path, blog: Path) -> None:
    # The check can fail: the actions' old versions, which run on node20, are flagged.
    shutil.copytree(blog / ".github", tmp_path / ".github")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    pages = tmp_path / ".github" / "workflows" / "pages.yml"
    text = pages.read_text(encoding="utf-8")
    pages.write_text(re.sub(r"actions/deploy-pages@\S+ # \S+", "actions/deploy-pages@v4", text))
    result = actionlint(tmp_path)
    assert result.returncode == 1
    assert 'runtime "node20" is deprecated' in result.stdout


@pytest.mark.parametrize("where", ["project", "blog"])
def test_zizmor_finds_nothing_of_medium_or_high_severity(where: str, blog: Path) -> None:
    findings = zizmor(REPO if where == "project" else blog)
    assert findings == [], shown(findings)


def test_zizmor_fails_on_the_old_nightly(tmp_path: Path) -> None:
    # The check can fail: the blog's nightly as it was (tags, contents: write for the whole
    # workflow, credentials persisted, a variable expanded into a script).
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "nightly.yml").write_text(
        "on:\n  workflow_dispatch:\npermissions:\n  contents: write\njobs:\n  digest:\n"
        "    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n"
        "      - run: python -m pip install \"${{ vars.DIGEST_PIP_SPEC || 'digest' }}\"\n"
        "  report:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo done\n",
        encoding="utf-8",
    )
    idents = {finding["ident"] for finding in zizmor(tmp_path)}
    assert {"unpinned-uses", "artipacked", "excessive-permissions"} <= idents, idents


@pytest.mark.parametrize("where", ["project", "blog"])
def test_every_action_is_pinned_to_a_commit_with_its_version(where: str, blog: Path) -> None:
    for name, workflow in workflows_of(REPO if where == "project" else blog).items():
        text = ((REPO if where == "project" else blog) / ".github" / "workflows" / name).read_text(
            encoding="utf-8"
        )
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    line = next(
                        line for line in text.splitlines() if f"uses: {step['uses']}" in line
                    )
                    pinned = line.split("uses: ", 1)[1].strip()
                    assert PINNED.match(pinned), f"{name}: {pinned}"


# --- what the blog runs ---------------------------------------------------------------------


def test_the_blog_pins_this_digest_and_installs_nothing_else(blog: Path) -> None:
    requirements = (blog / "requirements.txt").read_text(encoding="utf-8")
    lines = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    pagefind = re.search(r"^pagefind==(\S+)$", requirements, re.MULTILINE)
    assert pagefind, requirements  # the search index's builder, for the pages workflow
    version = pagefind.group(1)
    assert lines == [
        f"{DISTRIBUTION}=={__version__}", f"pagefind=={version}", f"pagefind-bin=={version}"
    ]  # fmt: skip
    for workflow in workflows_of(blog).values():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                run = step.get("run", "")
                if "pip install" in run:
                    # No other package, and no "digest" fallback (PyPI's digest is another
                    # program): only the pinned file.
                    assert run.strip() == "python -m pip install --no-input -r requirements.txt"


@pytest.mark.parametrize("where", ["project", "blog"])
def test_no_expression_is_expanded_into_a_script(where: str, blog: Path) -> None:
    # Values reach scripts through env:, never as ${{ }} pasted into the shell's text.
    for name, workflow in workflows_of(REPO if where == "project" else blog).items():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), f"{name}: {step['run']}"


def test_dependabot_updates_digest_and_the_actions(blog: Path) -> None:
    config = yaml.safe_load((blog / ".github" / "dependabot.yml").read_text(encoding="utf-8"))
    ecosystems = {update["package-ecosystem"]: update["directory"] for update in config["updates"]}
    assert ecosystems == {"pip": "/", "github-actions": "/"}


def test_init_warns_when_a_kept_requirements_file_names_no_digest(tmp_path: Path) -> None:
    from tests.helpers import digest

    (tmp_path / "requirements.txt").write_text("jekyll-helper==1.0\n", encoding="utf-8")
    code, out, err = digest("init", str(tmp_path))
    assert code == 0
    assert f"kept: {tmp_path / 'requirements.txt'}" in out
    assert f"add the line {DISTRIBUTION}=={__version__}" in err
    # A file that does name it, pinned or not, is fine.
    (tmp_path / "requirements.txt").write_text("Digest_Papers[fast] >= 0.1\n", encoding="utf-8")
    code, out, err = digest("init", str(tmp_path))
    assert code == 0 and "warning" not in err


def test_every_template_file_is_written() -> None:
    assert {"dependabot.yml", "requirements.txt"} <= set(BLOG_FILES)


# --- the nightly's post reaches Pages -------------------------------------------------------


def pushes(job: dict[str, Any]) -> bool:
    return any(
        re.search(r"\bgit\b[^\n]*\bpush\b", step.get("run", "")) for step in job.get("steps", [])
    )


def deploys(job: dict[str, Any]) -> bool:
    return any("actions/deploy-pages@" in step.get("uses", "") for step in job.get("steps", []))


def publication_path(root: Path) -> list[str]:
    """What is wrong with the way the nightly's commit reaches Pages; empty when nothing is.

    GitHub starts no workflow for a push made with GITHUB_TOKEN (only workflow_dispatch and
    repository_dispatch are exempt), so a workflow `on: push` never sees the nightly's commit.
    The nightly must deploy after its push: in a job of its own that needs the pushing job, or
    by calling the Pages workflow (`workflow_call`) with the commit it pushed."""
    workflows = workflows_of(root)
    nightly = workflows["nightly.yml"]
    jobs = nightly["jobs"]
    pushers = [name for name, job in jobs.items() if pushes(job)]
    if not pushers:
        return ["the nightly pushes nothing"]
    problems = []
    for pusher in pushers:
        after = [
            job
            for job in jobs.values()
            if pusher
            in ([job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []))
        ]
        if deploys(jobs[pusher]) or any(deploys(job) for job in after):
            continue
        calls = [
            job for job in after if str(job.get("uses", "")).startswith("./.github/workflows/")
        ]
        if not calls:
            problems.append(f"nothing deploys after {pusher!r} pushes (a push event never comes)")
            continue
        for call in calls:
            called = workflows[Path(call["uses"]).name]
            triggers = on(called)
            if "workflow_call" not in triggers:
                problems.append(f"{call['uses']} cannot be called (no workflow_call)")
            if not any(deploys(job) for job in called["jobs"].values()):
                problems.append(f"{call['uses']} deploys nothing")
            # The called workflow's checkout would take the nightly's starting commit, from
            # before its push, unless it is given the pushed one.
            ref = str(call.get("with", {}).get("ref", ""))
            if "needs." + pusher + ".outputs." not in ref:
                problems.append(f"{call['uses']} is not given the commit {pusher!r} pushed")
            checkouts = [
                step
                for job in called["jobs"].values()
                for step in job.get("steps", [])
                if "actions/checkout@" in step.get("uses", "")
            ]
            if not all(
                step.get("with", {}).get("ref") == "${{ inputs.ref }}" for step in checkouts
            ):
                problems.append(f"{call['uses']} does not check out the commit it is given")
    return problems


def test_the_nightly_publishes_its_post_without_a_push_event(blog: Path) -> None:
    assert publication_path(blog) == []
    # A person's push still builds the site once, and only that workflow does it.
    workflows = workflows_of(blog)
    assert "push" in on(workflows["pages.yml"])
    assert [name for name, workflow in workflows.items() if "push" in on(workflow)] == ["pages.yml"]


def test_the_publication_check_fails_on_a_nightly_that_relies_on_its_push(
    tmp_path: Path, blog: Path
) -> None:
    shutil.copytree(blog / ".github", tmp_path / ".github")
    nightly = tmp_path / ".github" / "workflows" / "nightly.yml"
    workflow = yaml.safe_load(nightly.read_text(encoding="utf-8"))
    del workflow["jobs"]["publish"]
    workflow["jobs"]["failed-papers"]["needs"] = ["digest"]
    nightly.write_text(yaml.safe_dump(workflow), encoding="utf-8")
    assert publication_path(tmp_path) == [
        "nothing deploys after 'digest' pushes (a push event never comes)"
    ]
    # ... and on a call that would publish the commit from before the push.
    workflow["jobs"]["publish"] = {
        "needs": "digest",
        "uses": "./.github/workflows/pages.yml",
        "with": {"ref": "${{ github.sha }}"},
    }
    nightly.write_text(yaml.safe_dump(workflow), encoding="utf-8")
    assert publication_path(tmp_path) == [
        "./.github/workflows/pages.yml is not given the commit 'digest' pushed"
    ]


def test_the_nightly_publishes_when_some_papers_failed(blog: Path) -> None:
    # Exit 1 (some papers failed) still commits and publishes the others; the run is marked
    # failed only after.
    jobs = workflows_of(blog)["nightly.yml"]["jobs"]
    daily = next(step for step in jobs["digest"]["steps"] if step.get("id") == "daily")
    assert 'if [ "$status" -ge 2 ]; then exit "$status"; fi' in daily["run"]
    assert jobs["publish"]["if"] == "needs.digest.outputs.pushed == 'true'"
    assert jobs["failed-papers"]["needs"] == ["digest", "publish"]


def test_the_nightly_announces_its_posts_after_they_are_published(blog: Path) -> None:
    # A message sent while the post is still being deployed links to a page not there yet:
    # the secret reaches only the job that runs after the publication, from the pushed commit.
    jobs = workflows_of(blog)["nightly.yml"]["jobs"]
    holders = [
        (name, step.get("name"))
        for name, job in jobs.items()
        for step in job.get("steps", [])
        if "DIGEST_NOTIFY" in step.get("env", {})
    ]
    assert holders == [("announce", "announce the new posts")]
    announce = jobs["announce"]
    assert announce["needs"] == ["digest", "publish"]
    assert announce["if"] == "needs.publish.result == 'success'"
    checkout = announce["steps"][0]
    assert checkout["with"]["ref"] == "${{ needs.digest.outputs.commit }}"
    script = announce["steps"][-1]["run"]
    assert 'digest notify --date "$DAY" || echo "::warning::' in script
    assert "digest notify --week last || echo" in script


def test_each_job_has_only_the_permissions_it_needs(blog: Path) -> None:
    for where in (REPO, blog):
        for name, workflow in workflows_of(where).items():
            assert workflow["permissions"] == {}, name
            for job_name, job in workflow["jobs"].items():
                granted = job.get("permissions", {})
                writes = {scope for scope, level in granted.items() if level == "write"}
                allowed = {
                    ("nightly.yml", "digest"): {"contents"},
                    ("nightly.yml", "publish"): {"pages", "id-token"},
                    ("pages.yml", "deploy"): {"pages", "id-token"},
                    ("release.yml", "publish"): {"id-token"},
                }.get((name, job_name), set())
                assert writes == allowed, f"{name}: {job_name}: {granted}"


def run_commit_step(blog: Path, tmp_path: Path, day: str) -> dict[str, str]:
    """The nightly's commit step, as bash runs it on the runner, against a bare repository
    standing for GitHub; its outputs."""
    jobs = workflows_of(blog)["nightly.yml"]["jobs"]
    step = next(step for step in jobs["digest"]["steps"] if step.get("id") == "commit")
    outputs = tmp_path / "outputs.txt"
    outputs.write_text("")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GITHUB_TOKEN": "not-a-token",
        "GITHUB_SERVER_URL": str(tmp_path),
        "GITHUB_REPOSITORY": "remote",
        "GITHUB_REF_NAME": "main",
        "GITHUB_OUTPUT": str(outputs),
        "DAY": day,
    }
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=tmp_path / "site", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


@pytest.mark.slow  # git, a dozen times
def test_the_commit_step_says_which_posts_changed(tmp_path: Path, blog: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(blog, site, ignore=shutil.ignore_patterns(".git"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "remote.git")],
                   check=True)  # fmt: skip
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=site, check=True)
    subprocess.run([*git, "add", "-A"], cwd=site, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=site, check=True)
    subprocess.run(["git", "push", "-q", str(tmp_path / "remote.git"), "main"], cwd=site,
                   check=True)  # fmt: skip
    day = "2025-12-14"  # a Sunday: its day post and the week's issue share the date
    (site / "_digest" / f"{day}.json").write_text("{}")
    (site / "_posts" / f"{day}-daily-papers.md").write_text("day")
    first = run_commit_step(blog, tmp_path, day)
    assert (first["pushed"], first["day-changed"], first["week-changed"]) == (
        "true", "true", "false",
    )  # fmt: skip
    (site / "_posts" / f"{day}-weekly-papers-2025-W50.md").write_text("week")
    second = run_commit_step(blog, tmp_path, day)
    assert (second["pushed"], second["day-changed"], second["week-changed"]) == (
        "true", "false", "true",
    )  # fmt: skip
    third = run_commit_step(blog, tmp_path, day)
    assert (third["pushed"], third["day-changed"], third["week-changed"]) == (
        "false", "false", "false",
    )  # fmt: skip
    log = subprocess.run(["git", "log", "--oneline", "main"], cwd=tmp_path / "remote.git",
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert log.count(f"Daily Papers {day}") == 2
