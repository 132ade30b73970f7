"""Debian's system libraries as Bazel targets, found with pkg-config.

system_libs(name = "system", libs = {"grpcpp": ["grpc++"], ...}) makes
@system//:grpcpp, a cc_library carrying the flags pkg-config reports, plus
@system//:protoc and @system//:grpc_cpp_plugin linked from PATH. Nothing is
downloaded: a missing package fails the build naming the pkg-config module.
"""

def _words(text):
    return [w for w in text.replace("\n", " ").replace("\t", " ").split(" ") if w]

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed (is the Debian -dev package installed? run bazel/install-deps.sh): %s" %
             (" ".join(args), result.stderr))
    return result.stdout.strip()

def _system_libs_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    include_links = {}
    for name, modules in ctx.attr.libs.items():
        defines = []
        includes = []
        linkopts = []
        if modules:
            for flag in _words(_pkg_config(ctx, ["--cflags"] + modules)):
                if flag.startswith("-D"):
                    defines.append(flag[2:])
                elif flag.startswith("-I"):
                    path = flag[2:]
                    if path not in include_links:
                        link = "include_%d" % len(include_links)
                        ctx.symlink(path, link)
                        include_links[path] = link
                    includes.append(include_links[path])
            linkopts = _words(_pkg_config(ctx, ["--libs"] + modules))
        build.append("cc_library(")
        build.append("    name = %r," % name)
        build.append("    defines = %r," % defines)
        build.append("    includes = %r," % includes)
        build.append("    linkopts = %r," % linkopts)
        build.append(")")
        build.append("")

    for tool in ["protoc", "grpc_cpp_plugin"]:
        path = ctx.which(tool)
        if path == None:
            fail("%s is not on PATH: run bazel/install-deps.sh" % tool)
        ctx.symlink(path, tool)
    build.append('exports_files(["protoc", "grpc_cpp_plugin"])')
    ctx.file("BUILD", "\n".join(build) + "\n")
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)

system_libs = repository_rule(
    implementation = _system_libs_impl,
    attrs = {"libs": attr.string_list_dict(mandatory = True)},
    local = True,
    environ = ["PATH", "PKG_CONFIG_PATH"],
)
