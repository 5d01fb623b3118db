"""The release pipeline: the appliance's stages (disk, OVA per layout, RPM) from
builder.pipeline.appliance, then the smoke seed, the boot smoke test, the gates, the SBOM, the
signed repository, the provenance and the release tree, each a content-addressed stage of the
same table. The finished tree is swapped into the publish directory at once; a failed stage
stops the run before anything is published.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.atomic import staged_dir, sweep_stale_partials, write_atomic
from builder.console import Console
from builder.disk.registry import Recipe, load_recipe
from builder.errors import BuilderError, ExitCode, InputError
from builder.gpg import (
    AgentKey,
    SigningKey,
    agent_key_missing,
    check_key_signs,
    export_public_key,
    key_inputs,
    sign_rpm,
    signing_home,
)
from builder.model import PackageNames
from builder.pipeline.appliance import BuildOptions, disk_stage, ova_stage, rpm_stage
from builder.pipeline.stages import (
    Built,
    PlannedStage,
    Stage,
    StageContext,
    StageFailedError,
    StageResult,
    describe_result,
    plan_stages,
    run_stages,
    stages_to_run,
)
from builder.pipeline.store import StageCache
from builder.release.config import (
    ReleaseFile,
    passphrase_reference,
    signing_key_source,
)
from builder.repro import build_time, sha256_file, source_date_epoch
from builder.run import require_tool, run, tied_to_this_process

if TYPE_CHECKING:
    from builder.inventory.load import Inventory
    from builder.release.gates import GateResult

RELEASE_FORMAT = "1"
# rpm-sign and repo record the signing key as `signed_by`, as the appliance's rpm stage does.
SIGNED_FORMAT = "2"
SBOM_NAME = "sbom.spdx.json"
PROVENANCE_NAME = "provenance.intoto.json"
REPO_DIR = "repo"
SMOKE_DOMAIN_PREFIX = "he-release-smoke-"
SEED_KEY_SALT_CONTEXT = b"he-builder release seed stage key: "
SIGNING_STAGES = frozenset({"rpm-sign", "repo", "publish"})


class ReleaseFailedError(BuilderError):
    """The boot smoke test or a gate failed: nothing is published."""

    exit_code = ExitCode.RELEASE_FAILED


@dataclass(frozen=True)
class ReleaseContext:
    """What every stage of a release may read: the release file, the recipe it names (with the
    release's RPM name), the options for the appliance stages, the environment."""

    release: ReleaseFile
    recipe: Recipe
    options: BuildOptions
    cache_root: Path
    env: Mapping[str, str]
    publish: Path

    @property
    def epoch(self) -> int | None:
        return source_date_epoch(self.env)

    @property
    def base_url(self) -> str:
        given = self.release.model.repo.base_url
        return given or f"file://{self.publish.absolute() / REPO_DIR}"

    def ova_name(self, layout: str) -> str:
        meta = self.recipe.meta
        suffix = ".ova" if layout == "ovirt" else ".ovf.ova"
        return f"{meta.name}-{meta.version}-{meta.release}{suffix}"


def release_context(release: ReleaseFile, *, publish: Path | None, cache_root: Path,
                    env: Mapping[str, str]) -> ReleaseContext:
    model = release.model
    recipe = load_recipe(release.recipe_reference())
    package = dataclasses.replace(recipe.package, name=model.rpm.name)
    recipe = dataclasses.replace(recipe, package=PackageNames(**dataclasses.asdict(package)))
    options = BuildOptions(compression=model.ova.compression, payload=model.rpm.payload)
    target = publish if publish is not None else release.resolve(model.publish)
    check_smoke_site(release)
    return ReleaseContext(release, recipe, options, cache_root, env, target)


def check_smoke_site(release: ReleaseFile) -> None:
    """The smoke inventory loads and holds the smoke site, before any stage runs."""
    from builder.inventory.load import load_inventory  # noqa: PLC0415

    smoke = release.model.smoke
    inventory = release.resolve(smoke.inventory)
    if smoke.site not in load_inventory(inventory).sites:
        raise InputError(f"{release.path}: smoke.site: no site {smoke.site!r} in {inventory}")


# --- the stages ----------------------------------------------------------------------------


def release_stages(ctx: ReleaseContext) -> list[Stage]:
    """disk -> ova (oVirt layout; the RPM and the smoke test use it) [-> ova-ovf] -> rpm ->
    rpm-sign, seed -> smoke -> gates -> sbom, repo -> provenance -> publish."""
    stages = [disk_stage(ctx.recipe, ctx.cache_root, ctx.env),
              ova_stage(ctx.recipe, "ovirt", ctx.options, ctx.env)]
    if "ovf" in ctx.release.model.ova.layouts:
        stages.append(dataclasses.replace(ova_stage(ctx.recipe, "ovf", ctx.options, ctx.env),
                                          name="ova-ovf"))
    stages += [rpm_stage(ctx.recipe, "ova", ctx.options, ctx.env), sign_stage(ctx),
               seed_stage(ctx),
               smoke_stage(ctx), gates_stage(ctx), sbom_stage(ctx), repo_stage(ctx),
               provenance_stage(ctx), publish_stage(ctx)]
    return stages


def ova_stages(ctx: ReleaseContext) -> dict[str, str]:
    """The published OVA stages and their layouts."""
    layouts = ctx.release.model.ova.layouts
    return {("ova" if layout == "ovirt" else "ova-ovf"): layout for layout in layouts}


def seed_stage(ctx: ReleaseContext) -> Stage:
    """The smoke site's NoCloud seed (holds the site's secrets: the entry is private)."""
    smoke = ctx.release.model.smoke
    inventory = ctx.release.resolve(smoke.inventory)
    # The key and the build read the inventory once (a failed load is not kept: the build
    # then reports it).
    loaded = functools.cache(functools.partial(_load_inventory, inventory))

    def inputs() -> dict[str, Any]:
        return {"inventory": sha256_file(inventory) if inventory.is_file() else None,
                "site": smoke.site, "epoch": ctx.epoch,
                "secrets": secrets_fingerprint(loaded, smoke.site, ctx.env)}

    def build(sc: StageContext) -> Built:
        from builder.seed.master import write_site_seed  # noqa: PLC0415

        smoke_inventory = loaded()
        if smoke.site not in smoke_inventory.sites:
            raise InputError(f"{ctx.release.path}: smoke.site: no site {smoke.site!r} in "
                             f"{inventory}")
        site = smoke_inventory.sites[smoke.site]
        secrets = smoke_inventory.resolve_secrets(site, env=sc.env, prompt=None)
        seed = write_site_seed(site, secrets, sc.work_dir, env=sc.env)
        return Built(files={"seed": seed.iso, "user-data": seed.directory / "user-data"},
                     facts={"site": site.name, "fqdn": site.fqdn})

    return Stage("seed", (), inputs, build, title=f"rendering the seed of site {smoke.site}")


def _load_inventory(path: Path) -> Inventory:
    from builder.inventory.load import load_inventory  # noqa: PLC0415

    return load_inventory(path)


def secrets_fingerprint(loaded: Callable[[], Inventory], site: str,
                        env: Mapping[str, str]) -> str | None:
    """What the seed stage's key knows of the site's secrets: a changed password (in its file
    or variable) reruns the stage. Salted SHA-512 crypt hashes, as costly to guess from as the
    root hash the seed carries; the key shows nothing more. None when they cannot be read now
    (the stage then fails, saying why)."""
    from builder.passwords import derive_salt, sha512_crypt  # noqa: PLC0415

    try:
        inventory = loaded()
        secrets = inventory.resolve_secrets(inventory.sites[site], env=env, prompt=None)
        return " ".join(
            sha512_crypt(value, derive_salt(SEED_KEY_SALT_CONTEXT + name.encode(), site),
                         field=f"site {site}: {name}")
            for name, value in (("root_password", secrets.root_password),
                                ("admin_password", secrets.admin_password)))
    except (InputError, KeyError):
        return None


def smoke_stage(ctx: ReleaseContext) -> Stage:
    """The oVirt-layout OVA booted by he-launch with the smoke seed, no NIC: engine-setup (the
    appliance's own) must exit 0. The domain is transient and removed afterwards."""
    smoke = ctx.release.model.smoke
    domain = SMOKE_DOMAIN_PREFIX + smoke.site

    def inputs() -> dict[str, Any]:
        return {"memory": smoke.memory_mib, "vcpus": smoke.vcpus, "uri": smoke.uri}

    def build(sc: StageContext) -> Built:
        argv = [sys.executable, "-m", "builder.cli.he_launch",
                "--appliance", str(sc.upstream["ova"].artifact("ova").path),
                "--seed", str(sc.upstream["seed"].artifact("seed").path),
                "--site", smoke.site, "--name", domain, "--no-network", "--transient",
                "--replace", "--uri", smoke.uri, "--storage", smoke.storage,
                "--memory", str(smoke.memory_mib), "--vcpus", str(smoke.vcpus),
                "--boot-timeout", str(smoke.boot_timeout),
                "--setup-timeout", str(smoke.setup_timeout), "--json"]
        try:
            code, stdout = run_following(argv, {**os.environ, **sc.env}, sc.work_dir,
                                         lambda line: sc.console.note(f"smoke: {line}"))
        finally:
            remove_domain(smoke.uri, domain)
        result = parse_launch(stdout)
        if code != 0 or result.get("exit_status") != 0:
            reason = result.get("error") or f"engine-setup exited {result.get('exit_status')}"
            raise ReleaseFailedError(f"boot smoke test of site {smoke.site}: he-launch exited "
                                     f"{code}: {reason}")
        report = sc.work_dir / "smoke.json"
        summary = {"exit_status": result.get("exit_status"), "site": smoke.site,
                   "virt_type": result.get("virt_type"),
                   "durations": result.get("durations", {})}
        write_atomic(report, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
        transcript = Path(str(result.get("transcript", "")))
        files = {"smoke": report}
        if transcript.is_file():
            (sc.work_dir / "engine-setup.log").write_bytes(transcript.read_bytes())
            files["transcript"] = sc.work_dir / "engine-setup.log"
        return Built(files=files, facts={"exit_status": 0})

    return Stage("smoke", ("ova", "seed"), inputs, build,
                 title=f"boot smoke test (he-launch, site {smoke.site}, no NIC)")


def run_following(argv: list[str], env: Mapping[str, str], work: Path,
                  on_line: Callable[[str], None]) -> tuple[int, bytes]:
    """Run `argv` (no shell), passing each line of its stderr (he-launch's progress: it never
    prints a secret) to `on_line` as it comes; its stdout (the --json report) is returned.

    The child gets SIGTERM if this process dies, even killed (setpriv --pdeathsig): he-launch
    then removes its VM as on Ctrl-C, where a killed release would have left it booting."""
    require_tool("setpriv", package="util-linux")
    with tempfile.TemporaryFile(dir=work) as out:
        proc = subprocess.Popen(tied_to_this_process(argv, env=env, signal="TERM"),
                                env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        with proc.stderr:
            for raw in proc.stderr:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    on_line(line.removeprefix("he-launch: "))
        code = proc.wait()
        out.seek(0)
        return code, out.read()


def parse_launch(stdout: bytes) -> dict[str, Any]:
    try:
        data = json.loads(stdout.decode("utf-8", errors="replace") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def remove_domain(uri: str, domain: str) -> None:
    """The smoke VM is not kept, whatever happened (transient: destroy removes it)."""
    run(["virsh", "-c", uri, "destroy", domain], check=False)
    run(["virsh", "-c", uri, "undefine", domain], check=False)


def gates_stage(ctx: ReleaseContext) -> Stage:
    gates = ctx.release.model.gates
    needs = ("smoke", "rpm-sign", "seed", *ova_stages(ctx))

    def inputs() -> dict[str, Any]:
        return {"gates": gates.model_dump(mode="json"), "backend": ctx.recipe.backend,
                "tools": tools_key()}

    def build(sc: StageContext) -> Built:
        results = run_gates(ctx, sc)
        report = sc.work_dir / "gates.json"
        rows = [{"gate": r.name, "passed": r.passed, "detail": r.detail} for r in results]
        write_atomic(report, (json.dumps(rows, indent=2) + "\n").encode())
        failed = [r for r in results if not r.passed]
        if failed:
            more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
            raise ReleaseFailedError(f"gate {failed[0].name} failed: {failed[0].detail}{more}")
        return Built(files={"gates": report}, facts={"gates": rows})

    return Stage("gates", needs, inputs, build, title="gates (ova verify, rpmlint, OVF "
                 "schema, kickstart, cloud-init schema)")


def tools_key() -> str:
    """The gate tools' packages, cheaply (one dpkg-query): an upgrade reruns the gates."""
    done = run(["dpkg-query", "-W", "-f=${Package}=${Version}\n", "rpmlint", "libxml2-utils"],
               check=False)
    return done.text.strip()


def run_gates(ctx: ReleaseContext, sc: StageContext) -> list[GateResult]:
    from builder.ova import verify_ova  # noqa: PLC0415
    from builder.release import gates as g  # noqa: PLC0415

    model = ctx.release.model.gates
    results: list[GateResult] = []
    layouts = ova_stages(ctx)
    if model.ova_verify:
        for stage in layouts:
            ova = sc.upstream[stage].artifact("ova").path
            name = f"ova-verify-{layouts[stage]}"
            try:
                info = verify_ova(ova)
            except BuilderError as exc:  # a refused OVA is a failed gate, not a crash
                results.append(g.GateResult(name, False, f"{ova.name}: {exc.message}"))
                continue
            results.append(g.GateResult(name, True,
                                        f"{ova.name}: manifest and OVF match ({info.layout})"))
    if model.rpmlint:
        signed = sc.upstream["rpm-sign"]
        results.append(g.check_rpmlint(signed.artifact("rpm").path,
                                       public_key=signed.artifact("public-key").path,
                                       allowed=model.rpmlint_allow))
    if model.ovf_schema and "ova-ovf" in layouts:
        ovf = g.extract_ovf(sc.upstream["ova-ovf"].artifact("ova").path,
                            sc.work_dir / "standard.ovf")
        results.append(g.check_ovf_schema(ovf))
    if ctx.recipe.backend == "kickstart":
        results += kickstart_gates(ctx, sc.work_dir, sc.env)
    if model.cloud_init_schema:
        results.append(g.check_cloud_config(sc.upstream["seed"].artifact("user-data").path,
                                            g.default_cloud_init()))
    return results


def kickstart_gates(ctx: ReleaseContext, work_dir: Path,
                    env: Mapping[str, str]) -> list[GateResult]:
    """ksvalidator, for each version the release file names, on the kickstart the disk stage
    gives the installer (written in `work_dir`, mode 0600: it may hold the root password's
    hash)."""
    from builder.disk.kickstart_install import from_recipe  # noqa: PLC0415
    from builder.release import gates as g  # noqa: PLC0415

    kickstart = work_dir / "appliance.ks"
    write_atomic(kickstart, from_recipe(ctx.recipe, env).kickstart.encode(), mode=0o600)
    return [g.check_kickstart(kickstart, version) for version in ctx.release.model.gates.kickstart]


def check_kickstart_gates(ctx: ReleaseContext) -> None:
    """The gates stage's ksvalidator check, before any stage runs. Anaconda, and so `he-build
    appliance`, only warn about a user given twice or a deprecated option; the gate (`-e`)
    refuses them: said at once, not after the build and the boot."""
    if ctx.recipe.backend != "kickstart" or not ctx.release.model.gates.kickstart:
        return
    with tempfile.TemporaryDirectory(prefix="he-release-kickstart-") as scratch:
        failed = [r for r in kickstart_gates(ctx, Path(scratch), ctx.env) if not r.passed]
    if failed:
        raise InputError(
            f"{ctx.release.path}: gates.kickstart: the kickstart of recipe {ctx.recipe.name} "
            f"fails {failed[0].name}, which the gates stage runs after the build: "
            f"{failed[0].detail}",
            hint="he-build appliance builds it with a warning (as Anaconda installs it): "
                 "--render-kickstart FILE writes it, ksvalidator -e -v VERSION FILE checks it")


def sbom_stage(ctx: ReleaseContext) -> Stage:
    meta = ctx.recipe.meta

    def build(sc: StageContext) -> Built:
        from builder.release.sbom import (  # noqa: PLC0415
            ImageFacts,
            read_image_inventory,
            write_sbom,
        )

        disk = sc.upstream["disk"]
        art = disk.artifact("disk")
        inventory = read_image_inventory(art.path, disk_format=disk.facts["format"],
                                         env=sc.env, notify=sc.console.note)
        image = ImageFacts(meta.name, f"{meta.version}-{meta.release}", art.path.name,
                           art.sha256)
        dest = write_sbom(sc.work_dir / SBOM_NAME, image, inventory,
                          created=build_time(sc.env))
        return Built(files={"sbom": dest}, facts={"packages": len(inventory.packages)})

    return Stage("sbom", ("disk",),
                 lambda: {"meta": dataclasses.asdict(meta), "epoch": ctx.epoch}, build,
                 title="SBOM of the appliance image (libguestfs inspection, SPDX 2.3)")


def signing_inputs(ctx: ReleaseContext) -> dict[str, Any]:
    return {**key_inputs(signing_key(ctx)), "epoch": ctx.epoch}


def signing_key(ctx: ReleaseContext) -> SigningKey | AgentKey:
    """The first usable `signing.key` reference: a key file with its passphrase reference, or
    a key of the operator's GnuPG home unlocked in its agent (no passphrase is read for it)."""
    source = signing_key_source(ctx.release, ctx.env, agent_key_missing)
    if isinstance(source, AgentKey):
        return source
    return SigningKey(source, passphrase=passphrase_reference(ctx.release, ctx.env),
                      fingerprint=ctx.release.model.signing.fingerprint)


def repo_stage(ctx: ReleaseContext) -> Stage:
    """The RPM signed with the release key, in a createrepo_c repository with a signed
    repomd.xml, the public key and a .repo file."""
    repo = ctx.release.model.repo

    def inputs() -> dict[str, Any]:
        return {**signing_inputs(ctx), "repo": repo.model_dump(mode="json"),
                "base_url": ctx.base_url}

    def build(sc: StageContext) -> Built:
        from builder.release.repo import RepoOptions, build_repository  # noqa: PLC0415

        signed = sc.upstream["rpm-sign"].artifact("rpm").path
        options = RepoOptions(repo.id, repo.name, ctx.base_url, key_name=repo.key_name,
                              revision=ctx.epoch)
        with signing_home(signing_key(ctx), sc.env, signature_time=ctx.epoch) as signer:
            build_repository([signed], sc.work_dir / REPO_DIR, signer=signer, options=options)
        return Built(files=tree_files(sc.work_dir / REPO_DIR, prefix=REPO_DIR),
                     facts={"signed_by": signer.fingerprint})

    return Stage("repo", ("rpm-sign", "gates"), inputs, build, version=SIGNED_FORMAT,
                 title="the yum repository (createrepo_c, signed repomd.xml)")


def sign_stage(ctx: ReleaseContext) -> Stage:
    """The RPM signed with the release key (rpmsign in a private GnuPG home), and the key's
    public half, before the gates judge it."""

    def build(sc: StageContext) -> Built:
        rpm = sc.upstream["rpm"].artifact("rpm").path
        with signing_home(signing_key(ctx), sc.env, signature_time=ctx.epoch) as signer:
            signed = sign_rpm(signer, rpm, sc.work_dir / rpm.name)
            public = export_public_key(signer, sc.work_dir / "public-key.asc")
        return Built(files={"rpm": signed, "public-key": public},
                     facts={"signed_by": signer.fingerprint})

    return Stage("rpm-sign", ("rpm",), lambda: signing_inputs(ctx), build, version=SIGNED_FORMAT,
                 title="signing the RPM with the release key")


def tree_files(root: Path, *, prefix: str = "") -> dict[str, Path]:
    """Every regular file below `root`, by its path relative to root's parent (`prefix/...`)."""
    base = f"{prefix}/" if prefix else ""
    return {base + path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*")) if path.is_file()}


def published_files(ctx: ReleaseContext, upstream: Mapping[str, StageResult]) -> dict[str, Path]:
    """The release tree's files (SHA256SUMS aside) by their name in the publish directory."""
    files = {ctx.ova_name(layout): upstream[stage].artifact("ova").path
             for stage, layout in ova_stages(ctx).items()}
    files.update({name: art.path for name, art in upstream["repo"].artifacts.items()})
    files[SBOM_NAME] = upstream["sbom"].artifact("sbom").path
    return files


def provenance_stage(ctx: ReleaseContext) -> Stage:
    model = ctx.release.model
    needs = ("repo", "sbom", *ova_stages(ctx))

    def inputs() -> dict[str, Any]:
        return {"parameters": model.model_dump(mode="json"), "epoch": ctx.epoch,
                "recipe": sha256_file(ctx.recipe.path)}

    def build(sc: StageContext) -> Built:
        from builder.release import provenance as p  # noqa: PLC0415

        subjects = [p.Subject(name, sha256_of(sc.upstream, name, path))
                    for name, path in published_files(ctx, sc.upstream).items()]
        dependencies = [p.Dependency.of_file(ctx.recipe.path, name=f"recipe:{ctx.recipe.name}"),
                        p.Dependency.of_file(ctx.release.path, name="release-file")]
        started = build_time(sc.env)
        statement = p.render_statement(
            subjects, external_parameters={**model.model_dump(mode="json"),
                                           "source_date_epoch": ctx.epoch},
            dependencies=dependencies,
            run=p.RunFacts(p.builder_id_from_env(sc.env), p.tool_versions(), started, started,
                           p.invocation_id_from_env(sc.env)))
        dest = p.write_provenance(sc.work_dir / PROVENANCE_NAME, statement)
        return Built(files={"provenance": dest})

    return Stage("provenance", needs, inputs, build,
                 title="provenance (in-toto v1, SLSA provenance v1)")


def sha256_of(upstream: Mapping[str, StageResult], name: str, path: Path) -> str:
    """The digest the stage recorded for `path` (no rehash of a big OVA)."""
    for result in upstream.values():
        for art in result.artifacts.values():
            if art.path == path:
                return art.sha256
    return sha256_file(path)


def publish_stage(ctx: ReleaseContext) -> Stage:
    """The release tree, complete: OVAs, repository, SBOM, provenance, SHA256SUMS and its
    signature. Files are hard links to the upstream entries (read only)."""
    needs = ("repo", "sbom", "provenance", *ova_stages(ctx))

    def build(sc: StageContext) -> Built:
        from builder.release.checksums import sign_sha256sums, write_sha256sums  # noqa: PLC0415

        tree = sc.work_dir / "release"
        files = published_files(ctx, sc.upstream)
        files[PROVENANCE_NAME] = sc.upstream["provenance"].artifact("provenance").path
        for name, source in files.items():
            dest = tree / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, dest)
        for directory in [tree, *(p for p in tree.rglob("*") if p.is_dir())]:
            directory.chmod(0o755)
        with signing_home(signing_key(ctx), sc.env, signature_time=ctx.epoch) as signer:
            sign_sha256sums(signer, write_sha256sums(tree))
        return Built(files=tree_files(tree))

    return Stage("publish", needs, lambda: signing_inputs(ctx), build,
                 version=RELEASE_FORMAT, title="the release tree, SHA256SUMS signed")


# --- running and publishing ------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseRun:
    results: tuple[StageResult, ...]
    publish: Path
    files: tuple[tuple[str, int, str], ...]  # (name, size, sha256)

    @property
    def signed_by(self) -> str | None:
        """The fingerprint of the key that signed the RPM, the repository and the checksums,
        as the signing stage recorded it (also when it was reused)."""
        signing = next((r for r in self.results if r.stage == "rpm-sign"), None)
        return None if signing is None else signing.facts.get("signed_by")


def run_release(ctx: ReleaseContext, console: Console) -> ReleaseRun:
    """Every stage (reused where its key is stored), then the tree swapped into the publish
    directory. A failed stage raises StageFailedError; the publish directory is untouched."""
    stages = release_stages(ctx)
    store = StageCache(ctx.cache_root, notify=console.note)
    running = stages_to_run(stages, store)
    if running & SIGNING_STAGES:
        # Before any stage: a key that cannot sign is one line now, not after the build.
        check_key_signs(signing_key(ctx), ctx.env)
    if "gates" in running:
        check_kickstart_gates(ctx)
    results = run_stages(stages, store, console, ctx.env)
    tree = results["publish"]
    swap_in(tree, ctx.publish, console)
    files = tuple((name, art.size, art.sha256) for name, art in sorted(tree.artifacts.items()))
    return ReleaseRun(tuple(results[s.name] for s in stages), ctx.publish, files)


def swap_in(tree: StageResult, target: Path, console: Console) -> None:
    """The publish directory replaced whole, in one rename, by hard links to the tree (a copy
    where links are impossible); a stale partial of a killed swap is removed first."""
    from builder.pipeline.store import link_or_copy  # noqa: PLC0415

    sweep_stale_partials(target.absolute().parent, finals=[target.name])
    with staged_dir(target.absolute()) as temp:
        temp.chmod(0o755)
        for name, art in sorted(tree.artifacts.items()):
            dest = temp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.parent.chmod(0o755)
            link_or_copy(art.path, dest)
    console.note(f"published: {target}")


def plan_release(ctx: ReleaseContext) -> list[PlannedStage]:
    return plan_stages(release_stages(ctx), StageCache(ctx.cache_root))


def describe_plan(plan: Sequence[PlannedStage]) -> list[dict[str, Any]]:
    return [{"stage": p.name, "needs": list(p.needs), "key": p.key, "action": p.action}
            for p in plan]


def describe_results(results: Sequence[StageResult]) -> list[dict[str, Any]]:
    return [{"stage": r.stage, "key": r.key, "result": "reused" if r.reused else "ran",
             "seconds": r.seconds, **describe_result(r)} for r in results]


def release_failed(exc: StageFailedError) -> BuilderError:
    """A stage failure as the release reports it: the stage named, the cause's exit code (the
    smoke test and the gates: RELEASE_FAILED), and that nothing was published."""
    exc.hint = exc.hint or "nothing was published; fix the cause and run again (finished " \
                           "stages are reused)"
    return exc

