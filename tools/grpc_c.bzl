"""Code generation from .proto files: C (protobuf-c + protoc-gen-grpcc), Python, descriptor sets.

Every macro runs the Debian compilers (/usr/bin/protoc, /usr/bin/protoc-c)
from genrules; nothing generated is checked in.

Proto files come from two places:
  srcs         .proto files of the calling package, named relative to it. The
               package directory is their import root: in package `proto`,
               "oee/v1/orchestrator.proto" is imported under that name.
  system_srcs  import paths of .proto files installed under /usr/include
               (google/protobuf/*.proto) or /usr/share/grpc-proto
               (grpc/health/v1/health.proto, grpc/reflection/...); the
               generated files land in the calling package under the same path.
Imports are resolved against, in order: the calling package, `import_roots`
(workspace-relative directories; their files must be listed in
`proto_deps`), /usr/include and /usr/share/grpc-proto.

grpc_c_library makes three cc_libraries, so that a program links only the
runtime of its own side:
  name           the protobuf-c messages only (<file>.pb-c.h)
  name_client    + typed client stubs (<file>.grpc-client.h), on //client/rt
  name_server    + method tables (<file>.grpc-server.h), on //server/rt
A client (oeectl) depends on name_client, a server on name_server, code that
only converts messages on name.

Generated C is compiled with relaxed warnings and exported with
`includes = ["."]`, so dependants write
    #include "oee/v1/orchestrator.pb-c.h"
    #include "oee/v1/orchestrator.grpc-client.h"
    #include "oee/v1/orchestrator.grpc-server.h"

Example (BUILD):
    load("//tools:grpc_c.bzl", "grpc_c_library", "proto_c_library")
    proto_c_library(name = "timestamp_c",
                    system_srcs = ["google/protobuf/timestamp.proto"])
    grpc_c_library(name = "orchestrator_c",
                   srcs = ["oee/v1/orchestrator.proto"],
                   deps = [":timestamp_c"])
    # -> :orchestrator_c, :orchestrator_c_client, :orchestrator_c_server
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

PROTOC = "/usr/bin/protoc"
PROTOC_C = "/usr/bin/protoc-c"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
SYSTEM_PROTO_PATHS = ["/usr/include", "/usr/share/grpc-proto"]

_PLUGIN = "//tools/protoc-gen-grpcc"
_CLIENT_RUNTIME = "//client/rt:rpc_client"
_SERVER_RUNTIME = "//server/rt:rpc_server"

def _base(path):
    if not path.endswith(".proto"):
        fail("not a .proto file: " + path)
    return path[:-len(".proto")]

def _proto_args(srcs, system_srcs, import_roots):
    """Returns the protoc -I flags followed by the input names."""
    pkg = native.package_name() or "."
    paths = ([pkg] if srcs else []) + import_roots + SYSTEM_PROTO_PATHS
    flags = " ".join(["-I" + p for p in paths])
    return flags + " " + " ".join(srcs + system_srcs)

def _outs(srcs, suffixes):
    return [_base(s) + x for s in srcs for x in suffixes]

_CLIENT_SUFFIXES = [".grpc-client.c", ".grpc-client.h"]
_SERVER_SUFFIXES = [".grpc-server.c", ".grpc-server.h"]

def _c_genrule(name, srcs, system_srcs, import_roots, proto_deps, grpc):
    """Runs protoc-c (and, with grpc, the stub plugin) over every file;
    returns the generated file names of all of them."""
    names = srcs + system_srcs
    c_suffixes = [".pb-c.c", ".pb-c.h"]
    g_suffixes = _CLIENT_SUFFIXES + _SERVER_SUFFIXES if grpc else []
    cmd = PROTOC_C + " --c_out=$(RULEDIR) " + _proto_args(srcs, system_srcs, import_roots)
    tools = []
    if grpc:
        cmd += (" && " + PROTOC + " --plugin=protoc-gen-grpcc=$(location " +
                _PLUGIN + ") --grpcc_out=$(RULEDIR) " +
                _proto_args(srcs, system_srcs, import_roots))
        tools = [_PLUGIN]
    native.genrule(
        name = name,
        srcs = srcs + proto_deps,
        outs = _outs(names, c_suffixes + g_suffixes),
        cmd = cmd,
        tools = tools,
        message = "Generating C from protos for " + name,
    )
    return names

def grpc_c_library(
        name,
        srcs = [],
        system_srcs = [],
        deps = [],
        import_roots = [],
        proto_deps = [],
        grpc = True,
        **kwargs):
    """cc_libraries of protobuf-c messages and (grpc = True) C gRPC stubs.

    Targets: name (messages), and with grpc also name + "_client" (client
    stubs, linking //client/rt only) and name + "_server" (method tables,
    linking //server/rt only). The genrule is name + "_gen".

    Args:
      name: the messages cc_library's name (see above for the others).
      srcs: .proto files of this package (see the file comment).
      system_srcs: import paths of installed .proto files.
      deps: cc deps, e.g. the libraries generated for imported protos.
      import_roots: extra workspace-relative import directories.
      proto_deps: .proto labels under import_roots that srcs import.
      grpc: also run protoc-gen-grpcc and make the _client and _server
        targets.
      **kwargs: visibility, testonly, ... for every cc_library.
    """
    names = _c_genrule(name + "_gen", srcs, system_srcs, import_roots,
                       proto_deps, grpc)
    cc_library(
        name = name,
        srcs = _outs(names, [".pb-c.c"]),
        hdrs = _outs(names, [".pb-c.h"]),
        includes = ["."],
        copts = ["-Wno-unused-parameter"],
        deps = deps + ["@system//:protobuf_c"],
        **kwargs
    )
    if not grpc:
        return
    for side, suffixes, runtime in [
        ("_client", _CLIENT_SUFFIXES, _CLIENT_RUNTIME),
        ("_server", _SERVER_SUFFIXES, _SERVER_RUNTIME),
    ]:
        cc_library(
            name = name + side,
            srcs = _outs(names, [suffixes[0]]),
            hdrs = _outs(names, [suffixes[1]]),
            includes = ["."],
            copts = ["-Wno-unused-parameter"],
            deps = [":" + name, runtime, "@system//:protobuf_c"],
            **kwargs
        )

def proto_c_library(name, srcs = [], system_srcs = [], deps = [], **kwargs):
    """protobuf-c messages only, e.g. for well-known types:
    proto_c_library(name = "timestamp_c", system_srcs = ["google/protobuf/timestamp.proto"])."""
    grpc_c_library(name, srcs = srcs, system_srcs = system_srcs, deps = deps,
                   grpc = False, **kwargs)

def proto_descriptor_set(name, srcs = [], system_srcs = [], import_roots = [],
                         proto_deps = [], out = None, **kwargs):
    """Serialized FileDescriptorSet of srcs and all their imports, with source
    info (comments), for server reflection. Output: out or name + ".pb"."""
    out = out or name + ".pb"
    native.genrule(
        name = name,
        srcs = srcs + proto_deps,
        outs = [out],
        cmd = (PROTOC + " --include_imports --include_source_info " +
               "--descriptor_set_out=$@ " +
               _proto_args(srcs, system_srcs, import_roots)),
        message = "Generating descriptor set " + out,
        **kwargs
    )

def grpc_py_library(name, srcs = [], system_srcs = [], deps = [],
                    import_roots = [], proto_deps = [], **kwargs):
    """A py_library with <file>_pb2.py and <file>_pb2_grpc.py, importable by
    proto path: "oee/v1/orchestrator.proto" -> `from oee.v1 import
    orchestrator_pb2`. Well-known types come from Debian's python3-protobuf."""
    names = srcs + system_srcs
    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = _outs(names, ["_pb2.py", "_pb2_grpc.py"]),
        cmd = (PROTOC + " --python_out=$(RULEDIR) --grpc_python_out=$(RULEDIR)" +
               " --plugin=protoc-gen-grpc_python=" + GRPC_PYTHON_PLUGIN + " " +
               _proto_args(srcs, system_srcs, import_roots)),
        message = "Generating Python from protos for " + name,
    )
    native.py_library(
        name = name,
        srcs = _outs(names, ["_pb2.py", "_pb2_grpc.py"]),
        imports = ["."],
        deps = deps,
        **kwargs
    )
