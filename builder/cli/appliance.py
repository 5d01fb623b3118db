"""`he-build appliance`: recipe -> disk -> OVA or qcow2 -> RPM, with cached stages and a
summary."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.atomic import check_directory_target, write_atomic
from builder.cli.handler import CommandResult, Subcommands, a_path, a_value
from builder.console import human_size, text_table
from builder.errors import InputError
from builder.model import FORMATS

if TYPE_CHECKING:
    from builder.console import Console
    from builder.disk.recipe import Recipe
    from builder.gpg import AgentKey, SigningKey
    from builder.pipeline.appliance import ApplianceBuild

DEFAULT_RECIPE = "debian-test"
DEFAULT_KICKSTART_RECIPE = "kickstart-centos9"
STDOUT_NAME = "-"


def register(subparsers: Subcommands, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "appliance", parents=[parent], help="build the appliance disk, OVA and RPM",
        description="Build the appliance from a recipe: disk, then OVA (or qcow2), then RPM. "
                    "Stages whose inputs did not change are reused from the cache "
                    "($HE_BUILDER_CACHE, else ~/.cache/he-builder).")
    parser.add_argument("--recipe", type=a_value, default=None,
                        help=f"bundled recipe name or path to a recipe YAML (default: "
                             f"{DEFAULT_RECIPE}, or {DEFAULT_KICKSTART_RECIPE} with the "
                             f"kickstart options)")
    parser.add_argument("--list-recipes", action="store_true",
                        help="list the bundled recipes and where they are; build nothing")
    parser.add_argument("--out", type=a_path, default=Path("out"),
                        help="where the disk, OVA and RPM are published (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="ovirt",
                        help="what to build after the disk: ovirt = gzip OVA in oVirt's layout "
                             "+ its RPM (hosted-engine-setup, the Ansible role); qcow2 = the "
                             "qcow2 RPM oVirt 4.5.7 ships (the current role); ovf = standard "
                             "OVF 1.1 OVA for virt-v2v and other importers, no RPM "
                             "(default: %(default)s)")
    parser.add_argument("--compress", choices=("none", "zlib", "zstd"), default="zlib",
                        help="qcow2 cluster compression; zstd needs a qemu-img that reads it on "
                             "every host; with none, the OVA's gzip stream compresses instead "
                             "(default: %(default)s)")
    parser.add_argument("--payload", choices=("speed", "size"), default="speed",
                        help="RPM payload compression, used only for an image not compressed "
                             "already (--format qcow2 --compress none) (default: %(default)s)")
    parser.add_argument("--sign-key", type=a_value, default=None, metavar="FILE|agent:FINGERPRINT",
                        help="key to sign the RPM with: an OpenPGP secret key file (as `gpg "
                             "--export-secret-keys` writes it), or agent:FINGERPRINT, a key of "
                             "your GnuPG home ($GNUPGHOME, else ~/.gnupg) that its running "
                             "gpg-agent holds unlocked")
    parser.add_argument("--sign-passphrase", default=None, metavar="env:NAME|file:PATH",
                        help="where the key file's passphrase is: an environment variable "
                             "or a file, never the passphrase itself")
    kickstart = parser.add_argument_group(
        "kickstart backend", "install the disk from a CentOS Stream tree with a kickstart")
    kickstart.add_argument("--kickstart", type=a_path, default=None,
                           help="kickstart file: *.j2 is rendered with the recipe's values, "
                                "anything else is used as is (must end with poweroff)")
    kickstart.add_argument("--install-tree", type=a_value, default=None, metavar="URL|DIR",
                           help="tree with images/pxeboot/{vmlinuz,initrd.img}")
    kickstart.add_argument("--repo-url", default=None, metavar="URL",
                           help="where the installer gets stage2 and packages (needed for a DIR "
                                "tree)")
    kickstart.add_argument("--render-kickstart", type=a_path, default=None, metavar="FILE",
                           help="write the kickstart the installer would get to FILE (mode "
                                "0600; - for stdout) and stop: nothing is downloaded or built")
    parser.set_defaults(handler=run_appliance)


def run_appliance(args: argparse.Namespace, console: Console) -> CommandResult:
    if args.list_recipes:
        return list_recipes()
    if args.render_kickstart is not None:
        return render_kickstart_file(recipe_from_args(args), args.render_kickstart)
    # The build machinery imports libvirt and libguestfs: only this command pays for them, so
    # `he-build seed` and `inventory` run on a controller that has neither.
    from builder.pipeline.appliance import BuildOptions, build_appliance, describe  # noqa: PLC0415
    from builder.pipeline.store import usable_cache_root  # noqa: PLC0415

    env = dict(os.environ)
    recipe = recipe_from_args(args)
    check_directory_target(args.out, "--out")
    options = BuildOptions(compression=args.compress, payload=args.payload, format=args.format,
                           sign_key=signing_key_from_args(args, env))
    build = build_appliance(recipe, out_dir=args.out, options=options,
                            cache_root=usable_cache_root(env), console=console, env=env)
    return CommandResult(data=describe(build), text=summary_table(build))


def signing_key_from_args(args: argparse.Namespace,
                          env: dict[str, str]) -> SigningKey | AgentKey | None:
    """--sign-key and --sign-passphrase, checked before anything is built: the key file exists
    and the passphrase can be read, or the agent key is a full fingerprint (whether the key
    signs, build_appliance tries before any stage runs)."""
    from builder.gpg import SigningKey, is_agent_reference, read_passphrase  # noqa: PLC0415

    if args.sign_key is None:
        if args.sign_passphrase is not None:
            raise InputError("--sign-passphrase: there is no --sign-key to unlock")
        return None
    if args.format == "ovf":
        raise InputError("--sign-key: --format ovf builds no RPM to sign")
    if is_agent_reference(args.sign_key):
        return agent_key_from_args(args, env)
    key_file = Path(args.sign_key)
    if not key_file.is_file():
        raise InputError(f"--sign-key: signing key not found: {key_file}")
    if args.sign_passphrase is not None:
        read_passphrase(args.sign_passphrase, env)
    return SigningKey(key_file, passphrase=args.sign_passphrase)


def agent_key_from_args(args: argparse.Namespace, env: dict[str, str]) -> AgentKey:
    from builder.gpg import AgentKey  # noqa: PLC0415

    if args.sign_passphrase is not None:
        raise InputError("--sign-passphrase: an agent: key is unlocked in its gpg-agent; no "
                         "passphrase is read for it")
    try:
        return AgentKey.from_reference(args.sign_key, env)
    except ValueError as exc:
        raise InputError(f"--sign-key: {exc}") from None


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe, with the kickstart options given on the command line laid over its own."""
    overrides = kickstart_overrides(args)
    wants_kickstart = overrides or args.render_kickstart is not None
    default = DEFAULT_KICKSTART_RECIPE if wants_kickstart else DEFAULT_RECIPE
    from builder.disk.recipe import option_flag  # noqa: PLC0415
    from builder.disk.registry import load_recipe  # noqa: PLC0415  (every backend)

    recipe = load_recipe(args.recipe or default)
    if not overrides:
        return recipe
    if recipe.backend != "kickstart":
        flags = ", ".join(option_flag(key) for key in sorted(overrides))
        raise InputError(f"{flags}: recipe {recipe.name} uses the {recipe.backend} backend, "
                         f"not kickstart")
    return dataclasses.replace(recipe, options={**recipe.options, **overrides},
                               overrides=frozenset(overrides))


def list_recipes() -> CommandResult:
    from builder.resources import bundled_recipes  # noqa: PLC0415

    recipes = bundled_recipes()
    width = max((len(name) for name in recipes), default=0)
    text = "\n".join(f"{name.ljust(width)}  {path}" for name, path in recipes.items())
    rows = [{"name": name, "path": str(path)} for name, path in recipes.items()]
    return CommandResult(data={"ok": True, "recipes": rows}, text=text)


def render_kickstart_file(recipe: Recipe, target: Path) -> CommandResult:
    """The kickstart a build of `recipe` would give the installer, checked the same way, in
    `target` (mode 0600: it may hold the root password's hash), or on stdout for `-` (in the
    JSON document's `content` with --json)."""
    if recipe.backend != "kickstart":
        raise InputError(f"--render-kickstart: recipe {recipe.name} uses the {recipe.backend} "
                         "backend, not kickstart")
    to_stdout = str(target) == STDOUT_NAME
    if not to_stdout and (target.is_dir() or not target.parent.is_dir()):
        raise InputError(f"--render-kickstart: {target} is a directory or lies in a directory "
                         "that does not exist")
    from builder.disk.kickstart_install import from_recipe  # noqa: PLC0415

    kickstart = from_recipe(recipe, dict(os.environ)).kickstart
    if to_stdout:
        data = {"ok": True, "recipe": recipe.name, "kickstart": STDOUT_NAME, "content": kickstart}
        return CommandResult(data=data, text=kickstart, verbatim=True)
    write_atomic(target, kickstart.encode("utf-8"), mode=0o600)
    data = {"ok": True, "recipe": recipe.name, "kickstart": str(target)}
    return CommandResult(data=data, text=f"{target}: the kickstart of recipe {recipe.name}")


def kickstart_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.kickstart is not None:
        overrides["kickstart"] = str(args.kickstart.resolve())
    if args.install_tree is not None:
        tree: str = args.install_tree
        # A URL is left as given for the backend to check (only http(s) is served).
        overrides["install_tree"] = tree if "://" in tree else str(Path(tree).resolve())
    if args.repo_url is not None:
        overrides["repo_url"] = args.repo_url
    return overrides


def summary_table(build: ApplianceBuild) -> str:
    rows = [("stage", "cache", "size", "sha256", "path")]
    for a in build.artifacts:
        rows.append((a.stage, "hit" if a.reused else "built", human_size(a.size),
                     a.sha256[:16], str(a.path)))
    signed = [f"{a.path.name} is signed by key {a.signed_by}"
              for a in build.artifacts if a.signed_by is not None]
    return "\n".join([text_table(rows), *signed])
