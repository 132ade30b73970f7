"""Local stand-ins for @rules_cc and @rules_java.

Bazel 4.2.3 loads both from @bazel_tools even for a pure C++ build and would
download them. Their defs.bzl only forward to the native rules, so we generate
that forwarding here and the build stays offline.
"""

_CC_DEFS = """
def cc_binary(**kwargs):
    native.cc_binary(**kwargs)

def cc_import(**kwargs):
    native.cc_import(**kwargs)

def cc_library(**kwargs):
    native.cc_library(**kwargs)

def cc_proto_library(**kwargs):
    native.cc_proto_library(**kwargs)

def cc_test(**kwargs):
    native.cc_test(**kwargs)

def cc_toolchain(**kwargs):
    native.cc_toolchain(**kwargs)

def cc_toolchain_suite(**kwargs):
    native.cc_toolchain_suite(**kwargs)

def fdo_prefetch_hints(**kwargs):
    native.fdo_prefetch_hints(**kwargs)

def fdo_profile(**kwargs):
    native.fdo_profile(**kwargs)

def objc_import(**kwargs):
    native.objc_import(**kwargs)

def objc_library(**kwargs):
    native.objc_library(**kwargs)
"""

_JAVA_DEFS = """
def java_binary(**kwargs):
    native.java_binary(**kwargs)

def java_import(**kwargs):
    native.java_import(**kwargs)

def java_library(**kwargs):
    native.java_library(**kwargs)

def java_lite_proto_library(**kwargs):
    native.java_lite_proto_library(**kwargs)

def java_package_configuration(**kwargs):
    native.java_package_configuration(**kwargs)

def java_plugin(**kwargs):
    native.java_plugin(**kwargs)

def java_proto_library(**kwargs):
    native.java_proto_library(**kwargs)

def java_runtime(**kwargs):
    native.java_runtime(**kwargs)

def java_test(**kwargs):
    native.java_test(**kwargs)

def java_toolchain(**kwargs):
    native.java_toolchain(**kwargs)
"""

def _forwarding_repo_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD", "")
    ctx.file(ctx.attr.package + "/BUILD", "")
    ctx.file(ctx.attr.package + "/defs.bzl", ctx.attr.defs)

_forwarding_repo = repository_rule(
    implementation = _forwarding_repo_impl,
    attrs = {
        "package": attr.string(mandatory = True),
        "defs": attr.string(mandatory = True),
    },
)

def forwarding_rules_cc():
    _forwarding_repo(name = "rules_cc", package = "cc", defs = _CC_DEFS)

def forwarding_rules_java():
    _forwarding_repo(name = "rules_java", package = "java", defs = _JAVA_DEFS)
