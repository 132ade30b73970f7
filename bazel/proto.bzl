"""cc_grpc_library: C++ code for a .proto with protoc and grpc_cpp_plugin from PATH."""

def cc_grpc_library(name, srcs, deps = [], grpc = True, visibility = None):
    """Generates <file>.pb.{h,cc} (and .grpc.pb.{h,cc}) for srcs, wrapped in a cc_library.

    Protos import each other by their path from the workspace root, e.g.
    import "api/runtime/v1/api.proto", and C++ includes the same path.
    """
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    cmd = "$(location @system//:protoc) -I. --cpp_out=$(GENDIR)"
    tools = ["@system//:protoc"]
    if grpc:
        cmd += " --grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=$(location @system//:grpc_cpp_plugin)"
        tools.append("@system//:grpc_cpp_plugin")
    native.genrule(
        name = name + "_codegen",
        srcs = srcs,
        outs = outs,
        tools = tools,
        cmd = cmd + " $(SRCS)",
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@system//:protobuf"] + (["@system//:grpcpp"] if grpc else []),
        visibility = visibility,
    )
