"""The Butane `variant: flatcar` schema (1.0.0 = base v0_4, 1.1.0 = base v0_5) as data.

Each field names its YAML key, its type and how it appears in Ignition JSON. Field order is the
order of the Ignition structs, so output keys come out in the order Butane prints them.

Presence follows Go: a pointer field is emitted whenever it was written (even as "" or false);
`always` fields (Go strings without omitempty: path, name, device, …) are always emitted;
`omitzero` fields (Go non-pointer with omitempty) are dropped when zero; lists and structs are
dropped when empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ZERO = {"str": "", "int": 0, "bool": False}  # Go zero values of the scalar kinds
V1_0 = (1, 0, 0)
V1_1 = (1, 1, 0)
IGNITION_VERSION = {V1_0: "3.3.0", V1_1: "3.4.0"}
BASE_NAME = {V1_0: "v0_4", V1_1: "v0_5"}


def camel(name: str) -> str:
    """Butane's snake_case -> camelCase, with a trailing _mib spelled MiB."""
    if name.endswith("_mib"):
        name = name[: -len("_mib")] + "MiB"
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class ListOf:
    item: object

    def go_name(self, base: str) -> str:
        return "[]" + type_name(self.item, base)


@dataclass(frozen=True)
class Field:
    yaml: str
    type: object  # "str" | "int" | "bool" | Struct | ListOf
    json: str | None = ""  # "" = camel(yaml); None = Butane-only, never copied to Ignition
    always: bool = False
    omitzero: bool = False
    since: tuple = V1_0

    @property
    def json_name(self) -> str | None:
        if self.json is None:
            return None
        return self.json or camel(self.yaml)


@dataclass(eq=False)
class Struct:
    name: str
    fields: list[Field] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_version: dict[tuple, dict[str, Field]] = {}

    def fields_for(self, version: tuple) -> dict[str, Field]:
        known = self._by_version.get(version)
        if known is None:
            known = {f.yaml: f for f in self.fields if f.since <= version}
            self._by_version[version] = known
        return known


def type_name(kind: object, base: str) -> str:
    if isinstance(kind, Struct):
        return f"{base}.{kind.name}"
    if isinstance(kind, ListOf):
        return kind.go_name(base)
    return {"str": "string", "int": "int", "bool": "bool"}[kind]  # type: ignore[index]


def S(name: str, *fields: Field) -> Struct:
    return Struct(name, list(fields))


STR_LIST = ListOf("str")

Verification = S("Verification", Field("hash", "str"))
HTTPHeader = S("HTTPHeader", Field("name", "str", always=True), Field("value", "str"))
Resource = S(
    "Resource",
    Field("compression", "str"),
    Field("http_headers", ListOf(HTTPHeader)),
    Field("source", "str"),
    Field("inline", "str", json=None),
    Field("local", "str", json=None),
    Field("verification", Verification),
)
NodeUser = S("NodeUser", Field("id", "int"), Field("name", "str"))
NodeGroup = S("NodeGroup", Field("id", "int"), Field("name", "str"))
_NODE = (
    Field("group", NodeGroup),
    Field("overwrite", "bool"),
    Field("path", "str", always=True),
    Field("user", NodeUser),
)
File = S("File", *_NODE, Field("append", ListOf(Resource)), Field("contents", Resource), Field("mode", "int"))
Directory = S("Directory", *_NODE, Field("mode", "int"))
Link = S("Link", *_NODE, Field("hard", "bool"), Field("target", "str"))
Partition = S(
    "Partition",
    Field("guid", "str"),
    Field("label", "str"),
    Field("number", "int", omitzero=True),
    Field("resize", "bool"),
    Field("should_exist", "bool"),
    Field("size_mib", "int"),
    Field("start_mib", "int"),
    Field("type_guid", "str"),
    Field("wipe_partition_entry", "bool"),
)
Disk = S(
    "Disk",
    Field("device", "str", always=True),
    Field("partitions", ListOf(Partition)),
    Field("wipe_table", "bool"),
)
Filesystem = S(
    "Filesystem",
    Field("device", "str", always=True),
    Field("format", "str"),
    Field("label", "str"),
    Field("mount_options", STR_LIST),
    Field("options", STR_LIST),
    Field("path", "str"),
    Field("uuid", "str"),
    Field("wipe_filesystem", "bool"),
    Field("with_mount_unit", "bool", json=None),
)
Tang = S(
    "Tang",
    Field("thumbprint", "str"),
    Field("url", "str", omitzero=True),
    Field("advertisement", "str", since=V1_1),
)
ClevisCustom = S("ClevisCustom", Field("config", "str"), Field("needs_network", "bool"), Field("pin", "str"))
Clevis = S(
    "Clevis",
    Field("custom", ClevisCustom),
    Field("tang", ListOf(Tang)),
    Field("threshold", "int"),
    Field("tpm2", "bool"),
)
Luks = S(
    "Luks",
    Field("clevis", Clevis),
    Field("device", "str"),
    Field("discard", "bool", since=V1_1),
    Field("key_file", Resource),
    Field("label", "str"),
    Field("name", "str", always=True),
    Field("open_options", STR_LIST, since=V1_1),
    Field("options", STR_LIST),
    Field("uuid", "str"),
    Field("wipe_volume", "bool"),
)
Raid = S(
    "Raid",
    Field("devices", STR_LIST),
    Field("level", "str"),
    Field("name", "str", always=True),
    Field("options", STR_LIST),
    Field("spares", "int"),
)
Tree = S("Tree", Field("local", "str", json=None), Field("path", "str", json=None))
Storage = S(
    "Storage",
    Field("directories", ListOf(Directory)),
    Field("disks", ListOf(Disk)),
    Field("files", ListOf(File)),
    Field("filesystems", ListOf(Filesystem)),
    Field("links", ListOf(Link)),
    Field("luks", ListOf(Luks)),
    Field("raid", ListOf(Raid)),
    Field("trees", ListOf(Tree), json=None),
)
PasswdUser = S(
    "PasswdUser",
    Field("gecos", "str"),
    Field("groups", STR_LIST),
    Field("home_dir", "str"),
    Field("name", "str", always=True),
    Field("no_create_home", "bool"),
    Field("no_log_init", "bool"),
    Field("no_user_group", "bool"),
    Field("password_hash", "str"),
    Field("primary_group", "str"),
    Field("ssh_authorized_keys", STR_LIST),
    Field("ssh_authorized_keys_local", STR_LIST, json=None, since=V1_1),
    Field("shell", "str"),
    Field("should_exist", "bool"),
    Field("system", "bool"),
    Field("uid", "int"),
)
PasswdGroup = S(
    "PasswdGroup",
    Field("gid", "int"),
    Field("name", "str", always=True),
    Field("password_hash", "str"),
    Field("should_exist", "bool"),
    Field("system", "bool"),
)
Passwd = S("Passwd", Field("groups", ListOf(PasswdGroup)), Field("users", ListOf(PasswdUser)))
Dropin = S(
    "Dropin",
    Field("contents", "str"),
    Field("contents_local", "str", json=None, since=V1_1),
    Field("name", "str", always=True),
)
Unit = S(
    "Unit",
    Field("contents", "str"),
    Field("contents_local", "str", json=None, since=V1_1),
    Field("dropins", ListOf(Dropin)),
    Field("enabled", "bool"),
    Field("mask", "bool"),
    Field("name", "str", always=True),
)
Systemd = S("Systemd", Field("units", ListOf(Unit)))
IgnitionConfig = S("IgnitionConfig", Field("merge", ListOf(Resource)), Field("replace", Resource))
Proxy = S("Proxy", Field("http_proxy", "str"), Field("https_proxy", "str"), Field("no_proxy", STR_LIST))
TLS = S("TLS", Field("certificate_authorities", ListOf(Resource)))
Security = S("Security", Field("tls", TLS))
Timeouts = S("Timeouts", Field("http_response_headers", "int"), Field("http_total", "int"))
Ignition = S(
    "Ignition",
    Field("config", IgnitionConfig),
    Field("proxy", Proxy),
    Field("security", Security),
    Field("timeouts", Timeouts),
)
KernelArguments = S("KernelArguments", Field("should_exist", STR_LIST), Field("should_not_exist", STR_LIST))
Config = S(
    "Config",
    Field("version", "str", json=None),
    Field("variant", "str", json=None),
    Field("ignition", Ignition),
    Field("kernel_arguments", KernelArguments),
    Field("passwd", Passwd),
    Field("storage", Storage),
    Field("systemd", Systemd),
)

# fragment entry points, by the path a fragment sits at in a whole config
FRAGMENTS = {
    "storage.files": File,
    "storage.directories": Directory,
    "storage.links": Link,
    "storage.filesystems": Filesystem,
    "storage.trees": Tree,
    "passwd.users": PasswdUser,
    "systemd.units": Unit,
    "systemd.units.dropins": Dropin,
    "ignition": Ignition,
    "resource": Resource,
}
