#!/usr/bin/env python3
"""Render each function's IAM policy as Terraform would: the statements of
`data "aws_iam_policy_document" "function"` (infra/modules/tributary/
functions.tf) for every entry of `local.functions` (locals.tf), with the
ARNs of a stack given as references.

    policies.py --refs refs.json [--repo DIR] [--function NAME]

refs.json maps each reference the document uses (`aws_s3_bucket.data.arn`,
`local.region`, `aws_kinesis_stream.this` as a list of {arn} …) to its
value; `{function}` in a value is the function's name. It prints
{function: policy JSON}. An expression this renderer does not know, or a
reference refs.json lacks, is an error naming it, so the rendering cannot
drift silently from what Terraform does. The moto end-to-end test runs each
function with credentials carrying exactly this policy.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import hcl2

MODULE = Path("infra/modules/tributary")


class Unknown(Exception):
    pass


def unquote(value):
    """hcl2 keeps string literals quoted."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def literal(value):
    """A locals value of literals (lists, maps, toset([...]))."""
    if isinstance(value, dict):
        return {unquote(k): literal(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{toset\((\[.*\])\)\}", value, re.S)
        if m:
            try:
                return json.loads(m.group(1))
            except json.JSONDecodeError:
                return value  # computed (a for expression): not a literal
        return unquote(value)
    return value


def interpolations(template):
    """(start, end, inner) of each ${...} at the top level of a template."""
    i = 0
    while True:
        start = template.find("${", i)
        if start < 0:
            return
        depth, j = 0, start + 1
        while j < len(template):
            if template[j] == "{":
                depth += 1
            elif template[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        yield start, j + 1, template[start + 2:j]
        i = j + 1


class Renderer:
    def __init__(self, refs, locals_, function, spec):
        self.refs = refs
        self.locals = locals_
        self.function = function
        self.spec = spec

    def value(self, raw, scope):
        """An attribute as hcl2 gives it: a list, a quoted template or ${expr}."""
        if isinstance(raw, list):
            out = []
            for item in raw:
                v = self.value(item, scope)
                out.extend(v if isinstance(v, list) else [v])
            return out
        if not isinstance(raw, str):
            return raw
        if raw.startswith('"') and raw.endswith('"'):
            return self.template(raw[1:-1], scope)
        spans = list(interpolations(raw))
        if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(raw):
            return self.expr(spans[0][2].strip(), scope)
        return self.template(raw, scope)

    def template(self, text, scope):
        out, last = [], 0
        for start, end, inner in interpolations(text):
            out.append(text[last:start])
            out.append(str(self.expr(inner.strip(), scope)))
            last = end
        out.append(text[last:])
        return "".join(out)

    def expr(self, e, scope):
        m = re.fullmatch(r"\[for (\w+) in ([\w.\[\]]+) : (.+)\]", e, re.S)
        if m:
            var, source, body = m.groups()
            items = self.expr(source, scope)
            return [self.value(body.strip(), {**scope, var: item}) for item in items]
        m = re.fullmatch(r'contains\(([\w.]+), ("[^"]*"|[\w.]+)\) \? \[1\] : \[\]', e)
        if m:
            haystack = self.expr(m.group(1), scope)
            needle = self.value(m.group(2), scope) if m.group(2).startswith('"') else self.expr(m.group(2), scope)
            return [1] if needle in haystack else []
        m = re.fullmatch(r"length\(([\w.]+)\) > 0 \? \[1\] : \[\]", e)
        if m:
            return [1] if len(self.expr(m.group(1), scope)) > 0 else []
        return self.reference(e, scope)

    def reference(self, e, scope):
        if e == "each.key":
            return self.function
        if e.startswith("each.value."):
            field = e[len("each.value."):]
            if field not in self.spec:
                raise Unknown(f"local.functions[{self.function!r}] has no {field}")
            return self.spec[field]
        head, _, attr = e.partition(".")
        if head in scope:
            item = scope[head]
            return item[attr] if attr else item
        if e in self.refs:
            v = self.refs[e]
            return v.replace("{function}", self.function) if isinstance(v, str) else v
        if head == "local" and attr in self.locals and not isinstance(self.locals[attr], str):
            return self.locals[attr]
        raise Unknown(f"no value for {e!r}: add it to the refs file")

    def statement(self, block, scope):
        st = {"Effect": unquote(block.get("effect", '"Allow"'))}
        if "sid" in block:
            st["Sid"] = self.value(block["sid"], scope)
        st["Action"] = self.value(block["actions"], scope)
        st["Resource"] = self.value(block["resources"], scope)
        for condition in block.get("condition", []):
            test = self.value(condition["test"], scope)
            variable = self.value(condition["variable"], scope)
            values = self.value(condition["values"], scope)
            st.setdefault("Condition", {}).setdefault(test, {})[variable] = values
        return st

    def document(self, body):
        statements = [self.statement(b, {}) for b in body.get("statement", [])]
        for dynamic in body.get("dynamic", []):
            for label, block in dynamic.items():
                if unquote(label) != "statement":
                    raise Unknown(f"dynamic {label} blocks are not rendered")
                for _ in self.value(block["for_each"], {}):
                    for content in block["content"]:
                        statements.append(self.statement(content, {}))
        return {"Version": "2012-10-17", "Statement": statements}


def render(repo, refs, only=None):
    functions_tf = hcl2.load(open(repo / MODULE / "functions.tf"))
    locals_tf = hcl2.load(open(repo / MODULE / "locals.tf"))
    locals_ = {}
    for block in locals_tf.get("locals", []):
        for k, v in block.items():
            if not k.startswith("__"):
                locals_[k] = literal(v)
    body = None
    for data in functions_tf.get("data", []):
        for kind, named in data.items():
            if unquote(kind) == "aws_iam_policy_document":
                for name, b in named.items():
                    if unquote(name) == "function":
                        body = b
    if body is None:
        raise Unknown('functions.tf has no data "aws_iam_policy_document" "function"')
    policies = {}
    for function, spec in locals_["functions"].items():
        if only and function != only:
            continue
        policies[function] = Renderer(refs, locals_, function, spec).document(body)
    return policies


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refs", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--function")
    args = parser.parse_args()
    try:
        policies = render(args.repo.resolve(), json.loads(args.refs.read_text()), args.function)
    except Unknown as e:
        print(f"policies: {e}", file=sys.stderr)
        return 1
    print(json.dumps(policies, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
