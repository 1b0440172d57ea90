"""The files a patch or an archive names (`kfd.policy.data_names`)."""

from __future__ import annotations

import io
import tarfile
import zipfile

from kfd.policy.data_names import Names, names_in, strip_components


def _tar(*members: tarfile.TarInfo, gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for member in members:
            archive.addfile(member)
    return buffer.getvalue()


def test_a_patch_writes_every_name_its_headers_give_and_reads_the_old_ones() -> None:
    patch = b"--- a/x.py\t2020-01-01\n+++ b/y.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert names_in("git-patch", patch) == Names(("x.py", "y.py"), ("x.py",))
    assert names_in("patch", patch, 0).written == ("a/x.py", "b/y.py")


def test_patch_without_p_may_take_a_name_whole_one_component_less_or_its_last() -> None:
    names = names_in("patch", b"+++ a/b/c.py\n").written
    assert set(names) == {"a/b/c.py", "b/c.py", "c.py"}


def test_git_headers_name_files_with_no_hunk_renames_and_quoted_names() -> None:
    text = b"diff --git a/AGENTS.md b/AGENTS.md\nnew file mode 100644\n"
    assert "AGENTS.md" in names_in("git-patch", text).written
    renamed = b"diff --git a/x b/y\nrename from x\nrename to .git/hooks/pre-commit\n"
    assert ".git/hooks/pre-commit" in names_in("git-patch", renamed).written
    quoted = b'+++ "b/a\\tb\\303\\251"\n'
    assert names_in("git-patch", quoted).written == ("a\tb\u00e9",)


def test_dev_null_and_context_hunk_lines_are_no_names() -> None:
    text = b"*** /dev/null\n--- x.c\n***************\n*** 1,3 ****\n--- 1,4 ----\n"
    assert names_in("patch", text, 0).written == ("x.c",)


def test_an_encoded_mail_hides_its_names() -> None:
    mail = b"From: a\nContent-Transfer-Encoding: base64\n\nLS0t\n"
    assert names_in("git-patch", mail).unknown


def test_an_archive_names_its_members_without_a_leading_slash_and_stripped() -> None:
    data = _tar(tarfile.TarInfo("/pkg/AGENTS.md"), tarfile.TarInfo("pkg/a.py"))
    assert names_in("tar", data).written == ("pkg/AGENTS.md", "pkg/a.py")
    assert names_in("tar", data, 1).written == ("AGENTS.md", "a.py")
    gz = _tar(tarfile.TarInfo("x"), gz=True)
    assert names_in("tar", gz).written == ("x",)


def test_a_hard_links_target_is_written_and_a_member_through_a_link_is_unknown() -> None:
    hard = tarfile.TarInfo("h")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    assert names_in("tar", _tar(hard)).written == ("h", "../../etc/passwd")
    link = tarfile.TarInfo("l")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    assert names_in("tar", _tar(link, tarfile.TarInfo("l/passwd"))).unknown


def test_what_kfd_cannot_open_is_unknown() -> None:
    assert names_in("tar", b"\x28\xb5\x2f\xfd not a tar").unknown
    assert names_in("zip", b"PK not a zip").unknown
    assert names_in("tar", b"\x1f\x8b broken gzip").unknown


def test_a_zip_names_its_members_flattened_with_j() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("d/AGENTS.md", "")
    assert names_in("zip", buffer.getvalue()).written == ("d/AGENTS.md",)
    assert names_in("zip", buffer.getvalue(), flatten=True).written == ("AGENTS.md",)


def test_strip_components_drops_runs_of_slashes_as_one() -> None:
    assert strip_components("a//b/c", 1) == "b/c"
    assert strip_components("/etc/passwd", 1) == "etc/passwd"
    assert strip_components("a", 1) is None


def test_what_tar_i_reads_past_an_end_of_archive_is_named_too() -> None:
    """``tar -xi`` reads a second archive appended after the first's zero blocks."""
    first = _tar(tarfile.TarInfo("ok.txt"))
    second = _tar(tarfile.TarInfo("AGENTS.md"), tarfile.TarInfo(".git/hooks/pre-commit"))
    names = names_in("tar", first + second).written
    assert {"ok.txt", "AGENTS.md", ".git/hooks/pre-commit"} <= set(names)


def test_a_mail_whose_encoding_only_mentions_base64_is_taken_as_encoded() -> None:
    """git's mailinfo decodes where the value holds the word anywhere."""
    for value in ('"base64"', "x-base64", "BASE64 ", "quoted-printable; x"):
        mail = f"From: a\nContent-Transfer-Encoding: {value}\n\nK0tLIEFHRU5UUy5tZA==\n".encode()
        assert names_in("git-patch", mail).unknown, value
    plain = b"Content-Transfer-Encoding: 8bit\n\n+++ b/AGENTS.md\n"
    assert names_in("git-patch", plain).written == ("AGENTS.md",)


def test_an_indented_patch_is_read_as_gnu_patch_reads_it() -> None:
    """GNU patch skips leading blanks and ``X`` before a header (``intuit_diff_type``)."""
    for indent in ("  ", "\t", "X"):
        patch = f"{indent}--- AGENTS.md\n{indent}+++ AGENTS.md\n{indent}@@ -0,0 +1 @@\n".encode()
        assert "AGENTS.md" in names_in("patch", patch, 0).written, indent


def test_a_zip_name_with_backslashes_is_also_read_with_slashes() -> None:
    """Info-ZIP's unzip takes ``\\`` for ``/`` in names an MS-DOS zip wrote."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(".kfd\\config.toml")
        info.create_system = 0
        archive.writestr(info, "x")
    assert ".kfd/config.toml" in names_in("zip", buffer.getvalue()).written
