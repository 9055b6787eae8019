#!/usr/bin/env python3
"""Drives oras-py (the `oras` package from PyPI) for crates/berth/tests/e2e_oras.rs.

Each subcommand does one thing against a plain-HTTP registry and prints one JSON object on
stdout; anything else goes to stderr. Exits non-zero on any failure. With BERTH_ORAS_USER and
BERTH_ORAS_PASSWORD set, the client logs in first.

  push-image HOST REPO TAG WORKDIR
      oras `push` of an image-like manifest (an OCI config and one gzip layer): the subject.
  push-artifact HOST REPO TAG WORKDIR FILE ARTIFACT_TYPE SUBJECT_JSON
      An OCI 1.1 artifact manifest built here (artifactType, the empty config, FILE as its one
      layer, subject, annotations), uploaded with oras' upload_blob and upload_manifest.
  push-with-subject HOST REPO TAG WORKDIR FILE CONFIG_MEDIA_TYPE SUBJECT_JSON
      oras `push(subject=...)` with a config of CONFIG_MEDIA_TYPE and no artifactType (the
      registry must then report the config's media type as the artifactType).
  pull HOST REFERENCE OUTDIR
      oras `pull` into OUTDIR.

Printed for pushes: {"digest", "size", "mediaType", "header_digest", "manifest"} where digest
and size are those of the manifest bytes the registry serves back for TAG.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import types

import oras.client
import oras.decorator
import oras.defaults
import oras.oci
import oras.provider

# oras-py retries failed requests up to five times, sleeping 3 + 3**n seconds in between:
# minutes of waiting when a registry answers 500. Fail fast instead.
oras.decorator.time = types.SimpleNamespace(sleep=lambda _seconds: None)

OCI_MANIFEST = oras.defaults.default_manifest_media_type
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"


def client(host):
    """An oras client for HOST; logged in when BERTH_ORAS_USER and BERTH_ORAS_PASSWORD are set
    (oras then follows the registry's Basic or bearer-token challenges)."""
    c = oras.client.OrasClient(hostname=host, insecure=True, tls_verify=False)
    user = os.environ.get("BERTH_ORAS_USER")
    if user:
        c.login(
            username=user,
            password=os.environ.get("BERTH_ORAS_PASSWORD", ""),
            hostname=host,
            tls_verify=False,
        )
    return c


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def check(response, what):
    if response.status_code not in (200, 201, 202):
        raise SystemExit(
            f"{what}: HTTP {response.status_code} for {response.request.method} {response.url}\n"
            f"response headers: {dict(response.headers)}\nbody: {response.text[:4000]}"
        )


def served_manifest(c, host, repo, reference):
    """The exact manifest bytes the registry serves for reference, with their digest."""
    sep = "@" if reference.startswith("sha256:") else ":"
    container = c.get_container(f"{host}/{repo}{sep}{reference}")
    url = f"{c.prefix}://{container.manifest_url()}"
    r = c.do_request(url, "GET", headers={"Accept": OCI_MANIFEST})
    check(r, f"GET manifest {reference}")
    body = r.content
    return {
        "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "mediaType": r.headers.get("Content-Type", ""),
        "header_digest": r.headers.get("Docker-Content-Digest", ""),
        "manifest": json.loads(body),
    }


def tar_gz_with(name, data):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return raw.getvalue(), gzip.compress(raw.getvalue(), mtime=0)


def push_image(host, repo, tag, workdir):
    os.chdir(workdir)
    token = os.urandom(16).hex()
    layer_tar, layer_gz = tar_gz_with("hello.txt", f"subject image {token}\n".encode())
    with open("layer.tar.gz", "wb") as f:
        f.write(layer_gz)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
    }
    with open("config.json", "w") as f:
        json.dump(config, f)
    c = client(host)
    r = c.push(
        target=f"{host}/{repo}:{tag}",
        files=["layer.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip"],
        manifest_config="config.json:application/vnd.oci.image.config.v1+json",
        quiet=True,
    )
    check(r, "oras push (subject image)")
    out = served_manifest(c, host, repo, tag)
    out["push_header_digest"] = r.headers.get("Docker-Content-Digest", "")
    return out


def push_artifact(host, repo, tag, workdir, file, artifact_type, subject_json):
    os.chdir(workdir)
    subject = json.loads(subject_json)
    c = client(host)
    container = c.get_container(f"{host}/{repo}:{tag}")

    # The OCI 1.1 empty config: the two bytes "{}".
    with open("empty.json", "wb") as f:
        f.write(b"{}")
    config = {"mediaType": EMPTY_MEDIA_TYPE, "digest": sha256_file("empty.json"), "size": 2}
    check(c.upload_blob("empty.json", container, config), "upload empty config")

    layer = oras.oci.NewLayer(file, media_type="application/vnd.berth.e2e.payload.v1")
    layer["annotations"] = {oras.defaults.annotation_title: os.path.basename(file)}
    check(c.upload_blob(file, container, layer), "upload artifact layer")

    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]},
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "com.example.berth.e2e": tag},
    }
    r = c.upload_manifest(manifest, container)
    check(r, "upload artifact manifest")
    out = served_manifest(c, host, repo, tag)
    out["push_header_digest"] = r.headers.get("Docker-Content-Digest", "")
    out["oci_subject_header"] = r.headers.get("OCI-Subject", "")
    return out


def push_with_subject(host, repo, tag, workdir, file, config_media_type, subject_json):
    os.chdir(workdir)
    subject = json.loads(subject_json)
    with open("sbom-config.json", "w") as f:
        json.dump({"tool": "berth-e2e", "file": os.path.basename(file)}, f)
    c = client(host)
    r = c.push(
        target=f"{host}/{repo}:{tag}",
        files=[os.path.basename(file)],
        manifest_config=f"sbom-config.json:{config_media_type}",
        subject=oras.oci.Subject(mediaType=subject["mediaType"], digest=subject["digest"], size=subject["size"]),
        quiet=True,
    )
    check(r, "oras push (with subject)")
    out = served_manifest(c, host, repo, tag)
    out["push_header_digest"] = r.headers.get("Docker-Content-Digest", "")
    out["oci_subject_header"] = r.headers.get("OCI-Subject", "")
    return out


def pull(host, reference, outdir):
    c = client(host)
    files = c.pull(target=f"{host}/{reference}", outdir=outdir)
    return {"files": sorted(files)}


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    handlers = {
        "push-image": (push_image, 4),
        "push-artifact": (push_artifact, 7),
        "push-with-subject": (push_with_subject, 7),
        "pull": (pull, 3),
    }
    if cmd not in handlers or len(args) != handlers[cmd][1]:
        raise SystemExit(f"bad arguments {argv[1:]}\n{__doc__}")
    result = handlers[cmd][0](*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
