"""The shape of mailsetup/ (issue 11), read from the source with ast.

The import graph has a node per module of mailsetup/ and an edge per module named
in an import, wherever the import is (module level or inside a function):
`from mailsetup.x import y` is an edge to mailsetup.x.y when y is a module, else
to mailsetup.x. Importing mailsetup.a.b also runs mailsetup/a/__init__.py, so
there is an edge to each package above the imported module too, unless the
importing module is inside that package (then Python has imported it already).

Each binary package ships its own folder (debian/*.install); what a module may
import follows from that and from the Depends in debian/control.
"""

import ast
import glob
import os
import re
from collections import deque

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ROOT = "mailsetup"

# The packages' own folders and the order among them are known to these modules
# only: they may import from core/, imap/, filter/, cli/ and dns/ although they
# are shared top-level modules (the reapply of every installed package in order).
ORDER_MODULES = {"mailsetup.reapply", "mailsetup.maintainer"}
PACKAGE_FOLDERS = ("mailsetup.core", "mailsetup.imap", "mailsetup.filter", "mailsetup.webmail", "mailsetup.cli",
                   "mailsetup.dns")
# gettext's function is the one underscore name that is imported everywhere.
ALLOWED_PRIVATE = {("mailsetup.i18n", "_")}
# Where dh_install finds the modules (pybuild's install into debian/tmp); the
# patterns in debian/*.install say usr/lib/python3*/dist-packages/... (any version).
INSTALLED = "usr/lib/python3.11/dist-packages"


def module_files():
    """{module name: path} for every .py file under mailsetup/."""
    modules = {}
    for path in sorted(glob.glob(os.path.join(TOP, ROOT, "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, TOP)[:-len(".py")].split(os.sep)
        if rel[-1] == "__init__":
            rel = rel[:-1]
        modules[".".join(rel)] = path
    return modules


MODULES = module_files()


def is_package(name):
    return MODULES.get(name, "").endswith("__init__.py")


def in_folder(name, folder):
    return name == folder or name.startswith(folder + ".")


class Import:
    """One module named by an import statement: `target` is a module of mailsetup/;
    `names` are the names taken from it (`from target import a, b`), if any."""

    def __init__(self, source, target, line, names=(), top_level=True, implicit=False):
        self.source, self.target, self.line = source, target, line
        self.names, self.top_level, self.implicit = tuple(names), top_level, implicit

    def where(self):
        return "%s:%d" % (os.path.relpath(MODULES[self.source], TOP), self.line)

    def __repr__(self):
        how = " (package of an imported module)" if self.implicit else ""
        return "%s -> %s%s" % (self.where(), self.target, how)


IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _catches_import_error(node):
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in IMPORT_ERRORS for t in types):
            return True
    return False


def _nodes_with_depth(tree):
    """(node, run at import?) for every node: not inside a def or a lambda, and not
    in the body of a try that catches ImportError (a module that may be missing)."""
    todo = [(tree, True)]
    while todo:
        node, top = todo.pop()
        yield node, top
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        guarded = isinstance(node, ast.Try) and _catches_import_error(node)
        todo.extend((child, inner and not (guarded and child in node.body)) for child in ast.iter_child_nodes(node))


def _base_of(name, node):
    """The module an ImportFrom takes its names from (relative imports resolved)."""
    if not node.level:
        return node.module
    package = name if is_package(name) else name.rpartition(".")[0]
    parts = package.split(".")
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def parse(name):
    with open(MODULES[name], encoding="utf-8") as f:
        return ast.parse(f.read(), MODULES[name])


def imports_of(name, tree=None):
    """The Imports of module `name`, explicit ones first, each with where it is."""
    tree = tree or parse(name)
    found = []
    for node, top in _nodes_with_depth(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if in_folder(alias.name, ROOT):
                    found.append(Import(name, alias.name, node.lineno, top_level=top))
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(name, node)
            if not base or not in_folder(base, ROOT):
                continue
            names = []
            for alias in node.names:
                if base + "." + alias.name in MODULES:
                    found.append(Import(name, base + "." + alias.name, node.lineno, top_level=top))
                else:
                    names.append(alias.name)
            if names:
                found.append(Import(name, base, node.lineno, names, top_level=top))
    implicit = []
    for imp in found:
        parts = imp.target.split(".")
        for i in range(2, len(parts)):
            package = ".".join(parts[:i])
            if not in_folder(name, package):
                implicit.append(Import(name, package, imp.line, top_level=imp.top_level, implicit=True))
    return found + implicit


GRAPH = {name: imports_of(name) for name in MODULES}


def edges(source):
    return [imp for imp in GRAPH[source] if imp.target in MODULES and imp.target != source]


def find_cycles():
    """One shortest cycle (as a list of Imports) per strongly connected group of modules."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for imp in edges(v):
            w = imp.target
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for name in sorted(MODULES):
        if name not in index:
            visit(name)

    cycles = []
    for group in groups:
        start = min(group)
        # Shortest path from start back to start inside the group (breadth first).
        came = {}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            for imp in edges(v):
                if imp.target not in group or imp.target in came:
                    continue
                came[imp.target] = imp
                queue.append(imp.target)
            if start in came:
                break
        path, v = [], start
        while True:
            imp = came[v]
            path.append(imp)
            v = imp.source
            if v == start:
                break
        cycles.append((sorted(group), path[::-1]))
    return cycles


def test_every_imported_mailsetup_module_exists():
    missing = [imp for name in MODULES for imp in GRAPH[name] if imp.target not in MODULES]
    assert not missing, "imports of modules that are not in mailsetup/:\n" + "\n".join(map(repr, missing))


def test_no_import_cycle():
    cycles = find_cycles()
    text = []
    for group, path in cycles:
        inside = sorted({repr(imp) for name in group for imp in edges(name) if imp.target in group})
        text.append("cycle among %s:\n    %s\n  all imports among them:\n    %s"
                    % (", ".join(group), "\n    ".join(map(repr, path)), "\n    ".join(inside)))
    assert not cycles, "\n".join(text)


def _module_aliases(name, tree):
    """{local name: module} for the names a module binds to modules of mailsetup/."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if in_folder(alias.name, ROOT):
                    if alias.asname:
                        bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(name, node)
            for alias in node.names:
                if base and base + "." + alias.name in MODULES:
                    bound[alias.asname or alias.name] = base + "." + alias.name
    return bound


def _private(attr):
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def test_no_private_name_is_used_from_another_module():
    """`from mailsetup.x import _y`, and `x._y` for a module x imported from
    mailsetup/, both reach into another module's private part."""
    found = []
    for name in MODULES:
        tree = parse(name)
        for imp in GRAPH[name]:
            for taken in imp.names:
                if _private(taken) and (imp.target, taken) not in ALLOWED_PRIVATE:
                    found.append("%s imports %s from %s" % (imp.where(), taken, imp.target))
        aliases = _module_aliases(name, tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr)
                    and aliases[node.value.id] != name):
                where = "%s:%d" % (os.path.relpath(MODULES[name], TOP), node.lineno)
                found.append("%s uses %s.%s of %s" % (where, node.value.id, node.attr, aliases[node.value.id]))
    assert not found, "private names used across modules:\n" + "\n".join(sorted(set(found)))


def _imports_into(sources, forbidden, allowed_sources=()):
    return [imp for name in MODULES if any(in_folder(name, s) for s in sources) and name not in allowed_sources
            for imp in GRAPH[name] if not imp.implicit and any(in_folder(imp.target, f) for f in forbidden)]


def test_the_core_knows_nothing_of_the_mailboxes_and_the_filter():
    found = _imports_into(["mailsetup.core"], ["mailsetup.imap", "mailsetup.filter"])
    assert not found, "\n".join(map(repr, found))


def test_the_mailboxes_know_nothing_of_the_filter():
    found = _imports_into(["mailsetup.imap"], ["mailsetup.filter"])
    assert not found, "\n".join(map(repr, found))


def test_shared_modules_know_no_package_folder_but_the_order_modules():
    shared = [name for name in MODULES if not any(in_folder(name, folder) for folder in PACKAGE_FOLDERS)]
    found = [imp for name in shared if name not in ORDER_MODULES
             for imp in GRAPH[name] if not imp.implicit and any(in_folder(imp.target, f) for f in PACKAGE_FOLDERS)]
    assert not found, "\n".join(map(repr, found))


# --- what each binary package ships ------------------------------------------

def _glob_regex(pattern):
    """dh_install's glob (bsd_glob with braces) as a regex: * and ? stay inside one
    path component."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i + 1)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        elif c == "{":
            end = pattern.index("}", i)
            out += "(?:" + "|".join(_glob_regex(part) for part in pattern[i + 1:end].split(",")) + ")"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out


def install_entries():
    """[(binary package, pattern)] of debian/*.install (first field of each line)."""
    entries = []
    for path in sorted(glob.glob(os.path.join(TOP, "debian", "*.install"))):
        package = os.path.basename(path)[:-len(".install")]
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    entries.append((package, line.split()[0].rstrip("/")))
    return entries


def ships(pattern, path):
    """Does an entry ship the file at `path`? A pattern naming a directory ships
    everything below it."""
    parts = path.split("/")
    regex = re.compile(_glob_regex(pattern))
    return any(regex.fullmatch("/".join(parts[:i])) for i in range(1, len(parts) + 1))


def shipped_by():
    """{module name: [(binary package, pattern)]}."""
    entries = install_entries()
    result = {}
    for name, path in MODULES.items():
        installed = INSTALLED + "/" + os.path.relpath(path, TOP).replace(os.sep, "/")
        result[name] = [(package, pattern) for package, pattern in entries if ships(pattern, installed)]
    return result


def package_of(name, shipping):
    return shipping[name][0][0] if len(shipping[name]) == 1 else None


def test_every_module_is_shipped_by_exactly_one_install_entry():
    wrong = ["%s: %s" % (os.path.relpath(MODULES[name], TOP), entries or "not shipped")
             for name, entries in shipped_by().items() if len(entries) != 1]
    assert not wrong, "\n".join(wrong)


def test_every_folder_of_modules_is_a_package():
    """setup.py installs packages (find_packages): a folder without __init__.py
    would not reach debian/tmp at all."""
    folders = {os.path.dirname(path) for path in MODULES.values()}
    assert sorted(f for f in folders if not os.path.exists(os.path.join(f, "__init__.py"))) == []


def depends():
    """{binary package: set of the binary packages it depends on, directly or not}
    among those of debian/control."""
    with open(os.path.join(TOP, "debian", "control"), encoding="utf-8") as f:
        paragraphs = [p for p in re.split(r"\n\s*\n", f.read()) if re.search(r"^Package:", p, re.M)]
    direct = {}
    for paragraph in paragraphs:
        package = re.search(r"^Package:\s*(\S+)", paragraph, re.M).group(1)
        field = re.search(r"^Depends:(.*(?:\n[ \t].*)*)", paragraph, re.M)
        names = re.findall(r"(?:^|,)\s*([a-z0-9][a-z0-9+.-]+)", field.group(1).replace("\n", " ")) if field else []
        direct[package] = set(names)
    closed = {}
    for package in direct:
        seen, todo = set(), [package]
        while todo:
            for dep in direct.get(todo.pop(), ()):
                if dep in direct and dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        closed[package] = seen
    return closed


def test_module_level_imports_stay_within_what_the_package_depends_on():
    """mailsetup-filter does not depend on mailsetup-imap, nor mailsetup on either:
    a module imported at module level from a package that may be missing breaks
    the importing module on such a system. An import inside a function runs only
    when that package's code is wanted (after checking it is installed), one in a
    try that catches ImportError copes with its absence."""
    shipping, deps = shipped_by(), depends()
    found = []
    for name in MODULES:
        mine = package_of(name, shipping)
        for imp in GRAPH[name]:
            theirs = package_of(imp.target, shipping) if imp.target in MODULES else None
            if (imp.top_level and not imp.implicit and mine and theirs and theirs != mine
                    and theirs not in deps.get(mine, ())):
                found.append("%r: %s imports %s's module at module level" % (imp, mine, theirs))
    assert not found, "\n".join(found)


def test_the_graph_sees_imports_inside_functions():
    """The reader itself: a lazy or guarded import is an edge, a module in a from-import
    is resolved, a relative import too."""
    tree = ast.parse("def f():\n    from mailsetup.core import apply\n    from mailsetup.i18n import _\n"
                     "try:\n    from ..imap import cli\nexcept ImportError:\n    cli = None\n"
                     "from .components import rspamd\n")
    found = {(imp.target, imp.names, imp.top_level) for imp in imports_of("mailsetup.filter.apply", tree)}
    assert found == {("mailsetup.core.apply", (), False), ("mailsetup.i18n", ("_",), False),
                     ("mailsetup.core", (), False), ("mailsetup.imap.cli", (), False),
                     ("mailsetup.imap", (), False), ("mailsetup.filter.components.rspamd", (), True),
                     ("mailsetup.filter.components", (), True)}
