"""Root filesystems for the Apptainer stand-in (envs/standins/apptainer), built once and cached.

No Apptainer build exists for the test machine (Debian 12), so the stand-in runs images with
bubblewrap over real root filesystems built here from Debian packages (``mmdebstrap``) and PyPI. One
recipe per image reference the project names lives in ``envs/images/*.toml``; how each stand-in
differs from the real image is in docs/images.md.

Cache: ``$AIBENCH_IMAGE_CACHE`` (default ``/var/cache/aibench/images``), machine-wide, so a fresh
clone in another folder reuses it. Each root filesystem is keyed by a hash of its recipe (and its
base's key; for ``apptainer build``, of the def file plus every ``%files`` source), built in a
temporary directory and renamed into place, under one build lock. Layout::

    <cache>/<key>/rootfs        the image's root filesystem (read-only at / under the stand-in)
    <cache>/<key>/image.json    reference, key, OCI-like config (env, entrypoint, cmd), labels
    <cache>/debs/               Debian packages reused across builds (mmdebstrap sync-in/out)
    <cache>/logs/<key>.log      build output

A "SIF" written by ``pull``/``build`` is a small JSON file naming the cached root filesystem.

Image layout follows Apptainer v1.3.6 (apptainer/apptainer@v1.3.6):
``internal/pkg/build/sources/base_environment.go`` (makeDirs, makeSymlinks, makeFiles: /.singularity.d,
/dev, /proc, /sys, /tmp, /var/tmp, /root, /home, /etc/hosts, /etc/resolv.conf), the env scripts in
``internal/pkg/build/sources/*.sh``, ``conveyorPacker_oci.go`` insertEnv (an image's config Env as
``/.singularity.d/env/10-docker2singularity.sh``: PATH exported as is, other variables as
``${VAR:-value}``), ``internal/pkg/build/metadata.go`` (%environment appended to 90-environment.sh,
%runscript with its shebang, labels.json with the org.label-schema.* build labels), ``stage.go`` (%post
run by ``apptainer exec --pwd / --writable --cleanenv`` as ``/bin/sh -ex /.post.script``) and
``internal/pkg/build/files/copy.go`` (%files: ``cp -fLr`` after creating the parent directory).

Usage: ``python3 aibench/standin_images.py [--all | REF | DEF-FILE ...]`` (envs/build-images.sh).
Standard library only: the stand-in runs it with whatever ``python3`` the caller has.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "envs" / "images"
STANDIN = ROOT / "envs" / "standins" / "apptainer"
#: bump to rebuild every cached root filesystem (the builder's own behaviour changed)
BUILDER_VERSION = "1"
APPTAINER_VERSION = "1.3.6"
DEFAULT_CACHE = "/var/cache/aibench/images"
SIF_FORMAT = "aibench-apptainer-standin-sif/1"
#: builds of one def file (by its text) kept in the cache; older ones are removed
KEEP_DEF_BUILDS = 2
SUITE = "bookworm"
#: the host's apt sources (deb.debian.org: bookworm, bookworm-updates, bookworm-security)
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
#: Apptainer's DefaultPath (internal/pkg/util/env/env.go)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_TOOLS = {"bwrap": "bubblewrap", "mmdebstrap": "mmdebstrap"}

Log = Callable[[str], None]


class BuildError(RuntimeError):
    """A root filesystem could not be built (the message names the log file)."""


class NoStandin(LookupError):
    """No recipe exists for an image reference."""


def cache_dir() -> Path:
    return Path(os.environ.get("AIBENCH_IMAGE_CACHE") or DEFAULT_CACHE)


def normalize_ref(ref: str) -> str:
    """``docker://redis:7-alpine`` and ``docker://docker.io/library/redis:7-alpine`` name one image."""
    ref = ref.strip()
    transport, sep, rest = ref.partition("://")
    if not sep:
        return ref
    if transport == "docker":
        for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
            if rest.startswith(prefix):
                rest = rest[len(prefix) :]
        if rest.startswith("library/"):
            rest = rest[len("library/") :]
        last = rest.rsplit("/", 1)[-1]
        if ":" not in last and "@" not in last:
            rest += ":latest"
    return f"{transport}://{rest}"


def sha256_bytes(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- recipes


@dataclass
class Recipe:
    path: Path
    ref: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "debian"))

    @property
    def base_ref(self) -> str | None:
        if self.kind == "from":
            return normalize_ref(self.data["from"])
        if self.kind == "scratch" and self.data.get("stage"):
            return normalize_ref(self.data["stage"])
        return None


def load_recipes(directory: Path = RECIPES) -> dict[str, Recipe]:
    """Every recipe in ``directory``, by normalized reference (aliases too)."""
    recipes: dict[str, Recipe] = {}
    for path in sorted(directory.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        recipe = Recipe(path, normalize_ref(data["ref"]), data)
        for ref in [data["ref"], *data.get("aliases", [])]:
            recipes[normalize_ref(ref)] = recipe
    return recipes


def find_recipe(ref: str, recipes: dict[str, Recipe] | None = None) -> Recipe:
    recipes = load_recipes() if recipes is None else recipes
    recipe = recipes.get(normalize_ref(ref))
    if recipe is None:
        known = ", ".join(sorted({r.ref for r in recipes.values() if not r.ref.startswith("stage:")}))
        raise NoStandin(
            f"no stand-in image exists for {ref}: this machine has no container registry access and "
            f"the Apptainer stand-in only knows the images built from {RECIPES} ({known})"
        )
    return recipe


def recipe_key(recipe: Recipe, recipes: dict[str, Recipe]) -> str:
    parts: list[bytes | str] = ["recipe", BUILDER_VERSION, recipe.path.read_bytes()]
    for source, _target in recipe.data.get("files", []):  # project files the image carries
        parts.append((ROOT / source).read_bytes())
    if recipe.base_ref:
        parts.append(recipe_key(find_recipe(recipe.base_ref, recipes), recipes))
    return sha256_bytes(*parts)[:32]


# ------------------------------------------------------------------------------------ the cache


@dataclass
class Image:
    """A cached root filesystem and its metadata (image.json)."""

    key: str
    meta: dict[str, Any] = field(default_factory=dict)
    #: where the image lives when not in the current cache (a SIF written with another cache)
    location: Path | None = None

    @property
    def dir(self) -> Path:
        return self.location or cache_dir() / self.key

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def ready(self) -> bool:
        return (self.dir / "image.json").is_file() and self.rootfs.is_dir()

    @classmethod
    def load(cls, key: str) -> Image:
        image = cls(key)
        image.meta = json.loads((image.dir / "image.json").read_text())
        return image


_LOCK_DEPTH = [0]


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One build at a time on this machine (two test sessions wait for each other, then reuse);
    re-entrant within a process (an image's build ensures its base first)."""
    if _LOCK_DEPTH[0]:
        _LOCK_DEPTH[0] += 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] -= 1
        return
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _LOCK_DEPTH[0] = 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_stale_tmp() -> None:
    tmp = cache_dir() / "tmp"
    if not tmp.is_dir():
        return
    for entry in tmp.iterdir():
        pid = entry.name.rsplit(".", 1)[-1]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():  # a live build (this process's own too)
            continue
        shutil.rmtree(entry, ignore_errors=True)


class Builder:
    """Builds what is missing, logging each build's output to <cache>/logs/<key>.log."""

    def __init__(self, log: Log | None = None) -> None:
        self.log = log or (lambda message: None)
        self.recipes = load_recipes()
        self.cache = cache_dir()
        self.built: list[str] = []

    # -- public

    def _build_once(self, key: str, what: str, build: Callable[[Path, Path], dict[str, Any]]) -> bool:
        """Image ``key`` cached, or built now by ``build(work, logfile) -> meta`` under the machine's
        build lock (checked again once the lock is held: another session may have built it). True when
        built here."""
        if Image(key).ready:
            return False
        _need_root()
        with build_lock():
            if Image(key).ready:
                return False
            _ensure_host_tools(self.log)
            _clean_stale_tmp()
            started = time.monotonic()
            self.log(f"building {what} (key {key})")
            with self._staging(key) as (work, logfile):
                self._finish(key, work, build(work, logfile), started)
            return True

    def ensure(self, ref: str) -> Image:
        """The root filesystem of ``ref`` (a docker:// reference with a recipe), built if missing."""
        recipe = find_recipe(ref, self.recipes)
        key = recipe_key(recipe, self.recipes)
        if Image(key).ready:
            return Image.load(key)
        # the base first, before this image's staging directory exists (its build is a whole build)
        base = self.ensure(recipe.base_ref) if recipe.base_ref else None

        def build(work: Path, logfile: Path) -> dict[str, Any]:
            meta = self._build_recipe(recipe, base, work, logfile)
            meta.update(key=key, ref=recipe.ref, recipe=_shown(recipe.path))
            return meta

        if self._build_once(key, f"{recipe.ref} (recipe {recipe.path.name})", build):
            self.built.append(recipe.ref)
        return Image.load(key)

    def build_def(self, deffile: Path, cwd: Path, notest: bool = False) -> Image:
        """``apptainer build`` of a definition file: the base image's rootfs, %files, %post, ..."""
        definition = parse_def(deffile.read_text())
        base = self._def_base(definition)
        key = def_key(definition, base.key, cwd)
        digest = hashlib.sha256(definition.text.encode()).hexdigest()

        def build(work: Path, logfile: Path) -> dict[str, Any]:
            meta = self._build_definition(definition, deffile, base, work, cwd, logfile, notest)
            meta.update(key=key, ref=f"def:{deffile.resolve()}", deffile=str(deffile.resolve()))
            meta["def_sha256"] = digest
            return meta

        if self._build_once(key, f"{deffile} (from {base.meta['ref']})", build):
            self.built.append(str(deffile))
            self._prune_superseded(digest, keep=KEEP_DEF_BUILDS)
        return Image.load(key)

    def _prune_superseded(self, def_sha256: str, keep: int) -> None:
        """Every change to a %files source is a new image (envs/aibench.def: 1 GB each): keep the
        ``keep`` newest builds of one def file's text (in any clone), remove older ones."""
        builds = []
        for meta_file in self.cache.glob("*/image.json"):
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads(meta_file.read_text())
                if meta.get("kind") == "def" and meta.get("def_sha256") == def_sha256:
                    builds.append((meta.get("built_at", ""), meta_file.parent))
        for _, directory in sorted(builds, reverse=True)[keep:]:
            self.log(f"removing the superseded build {directory.name} of the same def file")
            shutil.rmtree(directory, ignore_errors=True)

    # -- staging

    @contextlib.contextmanager
    def _staging(self, key: str) -> Iterator[tuple[Path, Path]]:
        work = self.cache / "tmp" / f"{key}.{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        logs = self.cache / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        logfile = logs / f"{key}.log"
        logfile.write_text(f"# build of {key} started {time.ctime()}\n")
        try:
            yield work, logfile
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _finish(self, key: str, work: Path, meta: dict[str, Any], started: float) -> None:
        meta["build_seconds"] = round(time.monotonic() - started, 1)
        meta["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        (work / "image.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        final = self.cache / key
        shutil.rmtree(final, ignore_errors=True)
        os.rename(work, final)  # atomic: a half-built root filesystem never has the final name

    # -- recipe kinds

    def _build_recipe(self, recipe: Recipe, base: Image | None, work: Path, logfile: Path) -> dict[str, Any]:
        data = recipe.data
        rootfs = work / "rootfs"
        kind = recipe.kind
        if kind in ("debian", "stage"):
            mmdebstrap(rootfs, data.get("packages", []), data.get("essential_hook", ""), logfile)
        elif kind == "from":
            assert base is not None
            run_logged(["cp", "-a", "--reflink=auto", str(base.rootfs), str(rootfs)], logfile)
        elif kind == "scratch":
            rootfs.mkdir(mode=0o755)
            if base is not None:
                self._copy_from_stage(recipe, base, rootfs, logfile)
        else:
            raise BuildError(f"{recipe.path}: unknown kind {kind!r}")
        for source, target in data.get("files", []):  # project files (e.g. a stand-in program)
            dst = rootfs / target.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / source, dst)
            dst.chmod(0o755 if os.access(ROOT / source, os.X_OK) else 0o644)
        for item in data.get("write", []):
            target = rootfs / item["path"].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(item["content"])
            target.chmod(int(str(item.get("mode", "644")), 8))
        config = _merged_config(base.meta.get("config", {}) if base and kind == "from" else {}, data)
        labels = dict(base.meta.get("labels", {})) if base and kind == "from" else {}
        labels.update(data.get("labels", {}))
        make_base_env(rootfs, config)
        if data.get("post"):
            run_post(rootfs, data["post"], logfile)
        _tidy(rootfs)
        return {"config": config, "labels": labels, "kind": kind}

    def _copy_from_stage(self, recipe: Recipe, stage: Image, rootfs: Path, logfile: Path) -> None:
        data = recipe.data
        executables: list[str] = []
        for source, target in data.get("copy", []):
            src = resolve_in(stage.rootfs, source)
            dst = rootfs / target.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            run_logged(["cp", "-rL", "--preserve=mode,timestamps", str(src), str(dst)], logfile)
            if src.is_file() and os.access(src, os.X_OK):
                executables.append(source)
        if data.get("busybox"):
            busybox = rootfs / "bin" / "busybox"
            busybox.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(resolve_in(stage.rootfs, "/bin/busybox"), busybox)
            applets = subprocess.run(
                [str(busybox), "--list-full"], capture_output=True, text=True, check=True
            ).stdout.split()
            for applet in applets:
                link = rootfs / applet
                if link.exists() or link.is_symlink():
                    continue
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.path.relpath("/bin/busybox", "/" + os.path.dirname(applet)))
            for name, content in BUSYBOX_FILES.items():
                (rootfs / "etc").mkdir(exist_ok=True)
                (rootfs / "etc" / name).write_text(content)
        if data.get("libs"):
            for lib in shared_libraries(stage.rootfs, executables, logfile):
                dst = rootfs / lib.lstrip("/")
                if not dst.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(resolve_in(stage.rootfs, lib), dst)

    # -- def files

    def _def_base(self, definition: Definition) -> Image:
        bootstrap = definition.header.get("bootstrap", "").lower()
        source = definition.header.get("from", "")
        if bootstrap == "docker":
            return self.ensure(f"docker://{source}")
        if bootstrap in ("localimage", "sandbox"):
            return image_of(Path(source))
        raise BuildError(
            f"Bootstrap: {bootstrap or '(none)'} is not supported by the stand-in (docker, localimage)"
        )

    def _build_definition(
        self,
        definition: Definition,
        deffile: Path,
        base: Image,
        work: Path,
        cwd: Path,
        logfile: Path,
        notest: bool,
    ) -> dict[str, Any]:
        rootfs = work / "rootfs"
        run_logged(["cp", "-a", "--reflink=auto", str(base.rootfs), str(rootfs)], logfile)
        sections = definition.sections
        env = {**os.environ, "APPTAINER_ROOTFS": str(rootfs), "SINGULARITY_ROOTFS": str(rootfs)}
        for prefix in ("APPTAINER_", "SINGULARITY_"):
            env[prefix + "ENVIRONMENT"] = "/.singularity.d/env/91-environment.sh"
        if sections.get("setup", Section()).script.strip():
            script = work / "setup.script"
            script.write_text(sections["setup"].script)
            # %setup runs on the host, like Apptainer's
            run_logged(["/bin/sh", "-ex", str(script)], logfile, cwd=cwd, env=env)
        for line in sections.get("files", Section()).script.splitlines():
            args = line.split("#", 1)[0].split()
            if not args:
                continue
            if len(args) > 2:
                raise BuildError(f"{deffile}: %files line {line!r}: expected 'src [dst]'")
            copy_from_host(args[0], args[1] if len(args) == 2 else "", rootfs, cwd, logfile)
        post = sections.get("post")
        if post and post.script.strip():
            run_post(rootfs, post.script, logfile, post.args)
        config = dict(base.meta.get("config", {}))
        labels = dict(base.meta.get("labels", {}))
        if "environment" in sections and sections["environment"].script.strip():
            env_script = rootfs / ".singularity.d" / "env" / "90-environment.sh"
            with open(env_script, "a") as out:
                out.write("\n" + sections["environment"].script + "\n")
        if "runscript" in sections and sections["runscript"].script.strip():
            (rootfs / ".singularity.d" / "runscript").write_text(_shebang_script(sections["runscript"]))
            (rootfs / ".singularity.d" / "runscript").chmod(0o755)
            config["deffile_runscript"] = True
        if "test" in sections and sections["test"].script.strip():
            (rootfs / ".singularity.d" / "test").write_text(_shebang_script(sections["test"]))
            (rootfs / ".singularity.d" / "test").chmod(0o755)
        build_labels = rootfs / ".build.labels"
        for line in sections.get("labels", Section()).script.splitlines():
            key, _, value = line.strip().partition(" ")
            if key and not key.startswith("#"):
                labels[key] = value.strip()
        if build_labels.is_file():  # labels %post appended to $APPTAINER_LABELS
            for line in build_labels.read_text().splitlines():
                key, _, value = line.strip().partition(" ")
                if key:
                    labels[key] = value.strip()
            build_labels.unlink()
        now = datetime.datetime.now().astimezone()
        labels["org.label-schema.schema-version"] = "1.0"
        labels["org.label-schema.build-date"] = now.strftime("%A_%-d_%B_%Y_%-H:%-M:%-S_%Z")
        labels["org.label-schema.usage.apptainer.version"] = f"{APPTAINER_VERSION}-standin"
        for key, value in definition.header.items():
            labels[f"org.label-schema.usage.singularity.deffile.{key}"] = value
        labels["org.label-schema.build-arch"] = "amd64"
        labels["org.aibench.standin.def-sha256"] = hashlib.sha256(deffile.read_bytes()).hexdigest()
        (rootfs / ".singularity.d" / "labels.json").write_text(json.dumps(labels, indent=2, sort_keys=True))
        (rootfs / ".singularity.d" / "Singularity").write_text(deffile.read_text())
        if not notest and (rootfs / ".singularity.d" / "test").is_file():
            test_args = ["-s", "--build-config", "test", "--pwd", "/", *_session_files(rootfs), str(rootfs)]
            standin_call(test_args, logfile)
        _tidy(rootfs)
        return {"config": config, "labels": labels, "kind": "def", "deffile_text": deffile.read_text()}


def _merged_config(base: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The base image's config overlaid with the recipe's (``inherit_env = false``: its env only)."""
    config = dict(base)
    own = dict(data.get("config", {}))
    if not own.pop("inherit_env", True):
        config.pop("env", None)
    if "env" in own:
        env = {item.split("=", 1)[0]: item for item in config.get("env", [])}
        env.update({item.split("=", 1)[0]: item for item in own["env"]})
        own = {**own, "env": list(env.values())}
    config.update(own)
    return config


def _shebang_script(section: Section) -> str:
    """handleShebangScript (internal/pkg/build/metadata.go): a leading #! line, else #!/bin/sh."""
    shebang, script = "#!/bin/sh", section.script
    if section.script.strip().startswith("#!"):
        first, _, rest = section.script.strip().partition("\n")
        shebang, script = first.strip(), rest
    if section.args:
        shebang += " " + section.args.split("#", 1)[0].strip()
    return f"{shebang}\n\n{script}\n"


def _shown(path: Path) -> str:
    """A recipe's path as image.json records it: relative to the project when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _tidy(rootfs: Path) -> None:
    for leftover in (".post.script", ".build.labels"):
        with contextlib.suppress(FileNotFoundError):
            (rootfs / leftover).unlink()
    for partial in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        partial.unlink()


# --------------------------------------------------------------------------------- build steps


def run_logged(
    argv: list[str], logfile: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    with open(logfile, "a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env,
            check=False,
        )  # fmt: skip
    if done.returncode != 0:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-25:])
        raise BuildError(f"{argv[0]} failed (exit {done.returncode}); log {logfile}:\n{tail}")


def _need_root() -> None:
    if os.geteuid() != 0:
        raise BuildError("building stand-in images needs root (mmdebstrap --mode=root, bubblewrap as root)")


def _ensure_host_tools(log: Log) -> None:
    """bubblewrap and mmdebstrap (Debian 12 packages), installed once if missing."""
    missing = [package for tool, package in HOST_TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    log(f"installing {' '.join(missing)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)


def mmdebstrap(rootfs: Path, packages: list[str], essential_hook: str, logfile: Path) -> None:
    """A Debian bookworm minbase root filesystem with ``packages``; .debs kept in <cache>/debs."""
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    # no daemon starts inside the chroot while packages are configured (mariadb, redis)
    policy = (
        'printf "#!/bin/sh\\nexit 101\\n" > "$1/usr/sbin/policy-rc.d"; chmod 755 "$1/usr/sbin/policy-rc.d"'
    )
    argv = [
        "unshare", "--mount", "--propagation", "private", "--",  # the chroot's mounts vanish with it
        "mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory", "--quiet",
        '--aptopt=APT::Install-Recommends "false"', '--aptopt=APT::Install-Suggests "false"',
        "--skip=download/empty", "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
        f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
        f"--essential-hook={policy}",
    ]  # fmt: skip
    if essential_hook:
        argv.append(f"--essential-hook={essential_hook}")
    if packages:
        argv.append("--include=" + ",".join(packages))
    argv += [
        f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
        '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb "$1/usr/sbin/policy-rc.d"',
        SUITE,
        str(rootfs),
        *MIRRORS,
    ]
    run_logged(argv, logfile)


#: the env scripts Apptainer puts in every image (internal/pkg/build/sources/*.sh at v1.3.6)
ENV_SCRIPTS = {
    "01-base.sh": "#!/bin/sh\n# \n",
    "90-environment.sh": "#!/bin/sh\n# Custom environment shell code should follow\n\n",
    "95-apps.sh": "#!/bin/sh\n# SCIF apps (SINGULARITY_APPNAME): not used by the stand-in\n",
    "99-base.sh": (
        "#!/bin/sh\n"
        'if [ -z "${LD_LIBRARY_PATH:-}" ]; then\n    LD_LIBRARY_PATH="/.singularity.d/libs"\nelse\n'
        '    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"\nfi\n\n'
        'if [ -z "${PS1:-}" ]; then\n    PS1="Apptainer> "\nfi\nexport LD_LIBRARY_PATH PS1\n'
    ),
    "99-runtimevars.sh": (
        "#!/bin/sh\n"
        'if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then\n'
        '\tPATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"\nfi\n\n'
        'if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then\n'
        '\tPATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"\nfi\n\n'
        'if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then\n\tPATH="${SING_USER_DEFINED_PATH}"\nfi\n\n'
        "unset SING_USER_DEFINED_PREPEND_PATH \\\n\t  SING_USER_DEFINED_APPEND_PATH \\\n"
        "\t  SING_USER_DEFINED_PATH\n\nexport PATH\n"
    ),
}
#: /etc/passwd and /etc/group of the official busybox image (buildroot's skeleton), which the
#: quay.io/prometheus/busybox images keep: nobody is 65534:65534
BUSYBOX_FILES = {
    "passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "bin:x:2:2:bin:/bin:/bin/false\nsys:x:3:3:sys:/dev:/bin/false\nsync:x:4:100:sync:/bin:/bin/sync\n"
    "mail:x:8:8:mail:/var/spool/mail:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n"
    "operator:x:37:37:Operator:/var:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "group": "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nlp:x:7:\n"
    "mail:x:8:\nkmem:x:9:\nwheel:x:10:root\ncdrom:x:11:\ndialout:x:18:\nfloppy:x:19:\nvideo:x:28:\n"
    "audio:x:29:\ntape:x:32:\nwww-data:x:33:\noperator:x:37:\nutmp:x:43:\nplugdev:x:46:\nstaff:x:50:\n"
    "lock:x:54:\nnetdev:x:82:\nusers:x:100:\nnobody:x:65534:\n",
}
ACTION_SCRIPT = '#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f "$script" ]; then\n        . "$script"\n    fi\ndone\n\nexec "$@"\n'  # noqa: E501
VARIABLE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def docker_env_script(env: list[str]) -> str:
    """insertEnv (conveyorPacker_oci.go): the image config's Env as 10-docker2singularity.sh."""

    def escape(value: str) -> str:  # shell.Escape (internal/pkg/util/shell/escape.go)
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")

    lines = ["#!/bin/sh"]
    for element in env:
        name, sep, value = element.partition("=")
        if not VARIABLE.match(name):
            continue
        if not sep:
            lines.append(f'export {name}="${{{name}:-}}"')
        elif name == "PATH":
            lines.append(f'export {name}={json.dumps(escape(value))}')
        else:
            lines.append(f'export {name}="${{{name}:-{json.dumps(escape(value))}}}"')
    return "\n".join(lines) + "\n"


def make_base_env(rootfs: Path, config: dict[str, Any]) -> None:
    """makeBaseEnv (base_environment.go) plus the OCI config's env script and runscript."""
    for directory in (".singularity.d/libs", ".singularity.d/actions", ".singularity.d/env", "dev", "proc",
                      "root", "var/tmp", "tmp", "etc", "sys", "home"):  # fmt: skip
        path = rootfs / directory
        if not path.exists() and not path.is_symlink():
            path.mkdir(parents=True, mode=0o755)
    (rootfs / "tmp").chmod(0o1777)
    for name, target in (("singularity", ".singularity.d/runscript"), (".run", ".singularity.d/actions/run"),
                         (".exec", ".singularity.d/actions/exec"), (".shell", ".singularity.d/actions/shell"),
                         (".test", ".singularity.d/actions/test"),
                         ("environment", ".singularity.d/env/90-environment.sh")):  # fmt: skip
        link = rootfs / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(target)
    for name in ("hosts", "resolv.conf"):
        path = rootfs / "etc" / name
        if not path.exists() and not path.is_symlink():
            path.write_text("")
    env_dir = rootfs / ".singularity.d" / "env"
    for name, content in ENV_SCRIPTS.items():
        if not (env_dir / name).exists():
            (env_dir / name).write_text(content)
            (env_dir / name).chmod(0o755)
    if config.get("env"):
        (env_dir / "10-docker2singularity.sh").write_text(docker_env_script(config["env"]))
        (env_dir / "10-docker2singularity.sh").chmod(0o755)
    for action in ("exec", "run", "shell", "start", "test"):
        path = rootfs / ".singularity.d" / "actions" / action
        if not path.exists():
            path.write_text(ACTION_SCRIPT)
            path.chmod(0o755)
    runscript = rootfs / ".singularity.d" / "runscript"
    if not runscript.exists():
        argv = [*config.get("entrypoint", []), *config.get("cmd", [])]
        body = "exec " + " ".join(_sh_quote(a) for a in argv) + ' "$@"' if argv else "echo 'There is no runscript defined for this container'"  # noqa: E501
        runscript.write_text(f"#!/bin/sh\n{body}\n")
        runscript.chmod(0o755)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _env_no_apptainer() -> dict[str, str]:
    """The caller's environment without APPTAINER_*/SINGULARITY_* variables (currentEnvNoApptainer)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("APPTAINER_", "SINGULARITY_"))}


def standin_call(args: list[str], logfile: Path) -> None:
    """The stand-in itself, like Apptainer's build calls ``apptainer exec`` (stage.go)."""
    run_logged([sys.executable, str(STANDIN), *args], logfile, cwd=Path("/"), env=_env_no_apptainer())


def _session_files(rootfs: Path) -> list[str]:
    """Binds for a build step: copies of the host's resolv.conf and hosts (stage.go sessionResolv,
    sessionHosts), and the host's CA bundle when it has one (see build_ca_env)."""
    session = rootfs.parent
    binds = []
    for name in ("resolv.conf", "hosts"):
        copy = session / f"session-{name}"
        with contextlib.suppress(OSError):
            shutil.copyfile(f"/etc/{name}", copy)
            binds += ["-B", f"{copy}:/etc/{name}:ro"]
    ca = host_ca_bundle()
    if ca and (rootfs / "etc/ssl/certs/ca-certificates.crt").is_file():
        binds += ["-B", f"{ca}:/etc/ssl/certs/ca-certificates.crt:ro"]
    return binds


def host_ca_bundle() -> str | None:
    """The host's CA bundle, when the build should trust it (``AIBENCH_BUILD_HOST_CA=0``: never).

    A machine behind a TLS-intercepting proxy trusts an extra CA the image's bundle lacks, and %post runs
    with --cleanenv (no PIP_CERT, REQUESTS_CA_BUNDLE): pip then fails "CERTIFICATE_VERIFY_FAILED", under
    real Apptainer too. The builder lends %post the host's bundle, bound over the image's
    /etc/ssl/certs/ca-certificates.crt, with PIP_CERT, REQUESTS_CA_BUNDLE and SSL_CERT_FILE pointing at it,
    as one would with ``apptainer build --bind`` and APPTAINERENV_*; the image keeps its own bundle."""
    if os.environ.get("AIBENCH_BUILD_HOST_CA", "1") == "0":
        return None
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                      os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):  # fmt: skip
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def build_ca_env(rootfs: Path) -> list[str]:
    if not (host_ca_bundle() and (rootfs / "etc/ssl/certs/ca-certificates.crt").is_file()):
        return []
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    keys = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    return [arg for key in keys for arg in ("--env", f"{key}={bundle}")]


def run_post(rootfs: Path, script: str, logfile: Path, args: str = "") -> None:
    """%post: ``apptainer -s --build-config exec --pwd / --writable --cleanenv --env ... -B <session
    resolv.conf> -B <session hosts> ROOTFS /bin/sh -ex /.post.script``, network shared (stage.go)."""
    (rootfs / ".post.script").write_text(script)
    (rootfs / ".post.script").chmod(0o755)
    params = args.split("#", 1)[0].split()
    argv = ["/bin/sh", "-ex", *params, "/.post.script"]
    if "-c" in params:  # getSectionScriptArgs: everything after -c is the command, the script its last word
        at = params.index("-c")
        argv = ["/bin/sh", "-ex", *params[: at + 1], " ".join([*params[at + 1 :], "/.post.script"])]
    standin_call(
        ["-s", "--build-config", "exec", "--pwd", "/", "--writable", "--cleanenv",
         "--env", "APPTAINER_ENVIRONMENT=/.singularity.d/env/91-environment.sh",
         "--env", "SINGULARITY_ENVIRONMENT=/.singularity.d/env/91-environment.sh",
         "--env", "APPTAINER_LABELS=/.build.labels", "--env", "SINGULARITY_LABELS=/.build.labels",
         *build_ca_env(rootfs), *_session_files(rootfs), str(rootfs), *argv],
        logfile,
    )  # fmt: skip
    (rootfs / ".post.script").unlink()


def copy_from_host(src: str, dst: str, rootfs: Path, cwd: Path, logfile: Path) -> None:
    """%files (internal/pkg/build/files/copy.go CopyFromHost): globbed src relative to the cwd,
    dst inside the rootfs (default: the same path), parent made, then ``cp -fLr``."""
    pattern = src if os.path.isabs(src) else str(cwd / src)
    paths = sorted(glob.glob(pattern)) or [pattern]
    for path in paths:
        target = dst or (path if os.path.isabs(src) else os.path.relpath(path, cwd))
        resolved = str(rootfs / target.lstrip("/")) + ("/" if target.endswith("/") else "")
        if not os.path.exists(resolved):
            if resolved.endswith("/"):
                os.makedirs(resolved, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(resolved), exist_ok=True)
        run_logged(["cp", "-fLr", path, resolved], logfile)


def resolve_in(rootfs: Path, path: str) -> Path:
    """``path`` inside ``rootfs`` with every symlink resolved against ``rootfs`` (never the host)."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = rootfs.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise BuildError(f"too many symlinks resolving {path} in {rootfs}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return rootfs.joinpath(*resolved)


def shared_libraries(rootfs: Path, executables: list[str], logfile: Path) -> list[str]:
    """The libraries (and ELF interpreter) ``executables`` load, by ldd inside ``rootfs``."""
    libs: set[str] = set()
    for executable in executables:
        out = subprocess.run(
            [sys.executable, str(STANDIN), "-s", "exec", "--cleanenv", "--no-home", str(rootfs),
             "ldd", executable],
            capture_output=True, text=True, cwd="/", env=_env_no_apptainer(), check=False,
        )  # fmt: skip
        with open(logfile, "a") as log:
            log.write(f"\n$ ldd {executable}\n{out.stdout}{out.stderr}")
        if "not a dynamic executable" in out.stdout + out.stderr:
            continue
        if out.returncode != 0:
            raise BuildError(f"ldd {executable} failed: {out.stderr.strip()}")
        for line in out.stdout.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                libs.add(match.group(1))
    return sorted(libs)


# ------------------------------------------------------------------------------------ def files


@dataclass
class Section:
    script: str = ""
    args: str = ""


@dataclass
class Definition:
    header: dict[str, str]
    sections: dict[str, Section]
    text: str


SECTION = re.compile(r"^%([A-Za-z]+)\s*(.*)$")


def parse_def(text: str) -> Definition:
    """Header ``Key: value`` lines, then ``%section [args]`` blocks (one build stage)."""
    header: dict[str, str] = {}
    sections: dict[str, Section] = {}
    current: Section | None = None
    for line in text.splitlines():
        match = SECTION.match(line.strip()) if not line.startswith((" ", "\t")) else None
        if match:
            name = match.group(1).lower()
            current = sections.setdefault(name, Section(args=match.group(2).strip()))
            continue
        if current is not None:
            current.script += line + "\n"
            continue
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            key, sep, value = stripped.partition(":")
            if sep:
                header[key.strip().lower()] = value.strip()
    for section in sections.values():
        lines = section.script.splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        section.script = "\n".join(lines) + ("\n" if lines else "")
    if "stage" in header:
        raise BuildError("multi-stage def files are not supported by the stand-in")
    return Definition(header, sections, text)


def _tree_digest(path: Path) -> str:
    """Content of a %files source (symlinks followed, like cp -L); __pycache__/*.pyc left out
    of the key so that importing the project does not force a rebuild."""
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(path.read_bytes())
        digest.update(oct(path.stat().st_mode & 0o777).encode())
        return digest.hexdigest()
    for directory, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(directory, path)
        digest.update(f"D {rel}\n".encode())
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            file = Path(directory) / name
            digest.update(f"F {rel}/{name} {oct(file.stat().st_mode & 0o777)}\n".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def def_key(definition: Definition, base_key: str, cwd: Path) -> str:
    parts: list[bytes | str] = ["def", BUILDER_VERSION, base_key, definition.text]
    for line in definition.sections.get("files", Section()).script.splitlines():
        args = line.split("#", 1)[0].split()
        if args:
            pattern = args[0] if os.path.isabs(args[0]) else str(cwd / args[0])
            for path in sorted(glob.glob(pattern)) or [pattern]:
                if not os.path.exists(path):
                    raise BuildError(f"%files source {args[0]} does not exist (relative to {cwd})")
                # the path as the def file names it (relative to the cwd): another clone gets the same key
                named = path if os.path.isabs(args[0]) else os.path.relpath(path, cwd)
                parts += [named, " ".join(args[1:]), _tree_digest(Path(path))]
    return sha256_bytes(*parts)[:32]


# ------------------------------------------------------------------------------------ SIF files


def write_sif(target: Path, image: Image, source: str) -> None:
    """The stand-in's "SIF": a small JSON file naming the cached root filesystem."""
    data = {
        "format": SIF_FORMAT,
        "source": source,
        "ref": image.meta.get("ref"),
        "key": image.key,
        "rootfs": str(image.rootfs),
        "cache": str(cache_dir()),
        "labels": image.meta.get("labels", {}),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, target)


class NotAnImage(ValueError):
    pass


def image_of(path: Path) -> Image:
    """The cached image a stand-in SIF names (ValueError if it is no stand-in SIF or its rootfs is gone)."""
    try:
        data = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError) as exc:
        raise NotAnImage(f"{path} is not a SIF of the Apptainer stand-in ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SIF_FORMAT:
        raise NotAnImage(f"{path} is not a SIF of the Apptainer stand-in")
    rootfs = Path(data["rootfs"])
    if not (rootfs.is_dir() and (rootfs.parent / "image.json").is_file()):
        raise NotAnImage(
            f"image {path} ({data.get('ref')}): its root filesystem {rootfs} is missing "
            f"(image cache cleared?); pull or build it again (envs/build-images.sh)"
        )
    return Image(rootfs.parent.name, json.loads((rootfs.parent / "image.json").read_text()), rootfs.parent)


# ----------------------------------------------------------------------------------------- CLI


def all_refs() -> list[str]:
    return sorted({r.ref for r in load_recipes().values() if r.kind != "stage"})


def with_bases(targets: list[str]) -> list[str]:
    """``targets`` with the images they are built from first (so each line times one build)."""
    recipes = load_recipes()
    ordered: list[str] = []

    def add(target: str) -> None:
        recipe = recipes.get(normalize_ref(target)) if not target.endswith(".def") else None
        if recipe is not None and recipe.base_ref:
            add(recipe.base_ref)
        name = recipe.ref if recipe is not None else target
        if name not in ordered:
            ordered.append(name)

    for target in targets:
        add(target)
    return ordered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="docker:// references or def files (default: --all)")
    parser.add_argument("--all", action="store_true", help="every image with a recipe in envs/images")
    args = parser.parse_args(argv)
    targets = args.targets if args.targets and not args.all else all_refs()
    if args.all:
        targets = all_refs() + [t for t in args.targets if t not in all_refs()]
    targets = with_bases(targets)
    print(f"image cache: {cache_dir()} (build logs in {cache_dir() / 'logs'})")
    builder = Builder()
    total = time.monotonic()
    failed = 0
    for target in targets:
        started = time.monotonic()
        before = len(builder.built)
        try:
            if target.endswith(".def"):
                deffile = Path(target)
                image = builder.build_def(deffile, Path.cwd())
                write_sif(deffile.with_suffix(".sif"), image, str(deffile))
            else:
                image = builder.ensure(target)
        except (BuildError, NoStandin, OSError, subprocess.CalledProcessError) as exc:
            print(f"{target}: FAILED: {exc}")
            failed += 1
            continue
        took = time.monotonic() - started
        state = f"built in {took:.0f} s" if len(builder.built) > before else "cached"
        print(f"{target}: {state} ({image.rootfs})")
    print(f"total: {time.monotonic() - total:.1f} s, {len(builder.built)} built, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
