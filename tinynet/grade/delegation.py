"""A static look for solutions that delegate to tinynet instead of doing the exercise.

The dynamic check (tinynet.grade.student.refuse) makes tinynet's own
implementation refuse to run while a part is checked; this reads the source
too, so a submission that hides the call from the dynamic check (a saved
copy, a reload) is still caught.  Rules, per part:

* importing the grader (``tinynet.grade``) or reloading a module: every part;
* inside a graded definition (``class Dense``, ``def col2im``, ...; see
  GRADED): a tinynet name that implements that very exercise (``col2im``
  taken from tinynet in ``def col2im``, ``softmax_cross_entropy`` in ``class
  SoftmaxCrossEntropy``, ``effective_width`` in ``def effective_width``);
* inside a graded class's ``backward``: a call of ``.backward(...)`` (tinynet's
  autograd doing the derivative the student must write).

Code outside the graded definitions -- a cell that compares the student's
loss with tinynet's, a demo -- may use anything.
"""
import ast

#: assignment -> graded definition -> (its parts, tinynet names it must not use)
GRADED = {
    "hw1_dense_softmax": {
        "Dense": (["dense_dx", "dense_dw", "dense_db"], {"dense", "linear", "Dense"}),
        "SoftmaxCrossEntropy": (["softmax_ce_forward", "softmax_ce_backward"],
                                {"softmax_cross_entropy", "nll_loss", "log_softmax",
                                 "SoftmaxCrossEntropy", "cross_entropy"}),
    },
    "hw2_conv_backward": {
        "col2im": (["col2im"], {"col2im"}),
        "Conv2D": (["conv_dw", "conv_db", "conv_dx"], {"conv2d", "Conv2D"}),
    },
    "hw3_freeze_detector": {
        "effective_width": (["effective_width"], {"effective_width", "group_units",
                                                  "width_from_projection", "symmetry"}),
        "find_zero_input_rows": (["find_zero_input_rows"], {"zero_input_rows"}),
        "frozen_rows_after_training": (["frozen_rows_after_training"], {"zero_input_rows"}),
    },
}
#: graded classes whose ``backward`` must not run tinynet's autograd
BACKWARD = {"Dense", "SoftmaxCrossEntropy", "Conv2D"}


def _all_parts(assignment):
    return [p for parts, _ in GRADED.get(assignment, {}).values() for p in parts]


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _own(what, name):
    return (f"{what} uses tinynet's own {name}: this exercise is to write it yourself, so "
            f"this part gets 0 points.")


class _Imports(ast.NodeVisitor):
    """Names bound to tinynet: module aliases, and {local name: tinynet name} imported."""

    def __init__(self):
        self.modules = set()      # local names of tinynet modules (tn, F, conv, ...)
        self.names = {}           # local name -> (module, imported name)
        self.grader = False
        self.reload = False

    def visit_Import(self, node):
        for a in node.names:
            if a.name.split(".")[0] == "tinynet":
                self.modules.add(a.asname or "tinynet")
                self.grader |= a.name.startswith("tinynet.grade")
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        if mod.split(".")[0] == "tinynet":
            self.grader |= mod.startswith("tinynet.grade") or (
                mod == "tinynet" and any(a.name == "grade" for a in node.names))
            for a in node.names:
                self.names[a.asname or a.name] = (mod, a.name)
                self.modules.add(a.asname or a.name)      # may be a submodule
        if mod == "importlib" and any(a.name == "reload" for a in node.names):
            self.reload = True
        self.generic_visit(node)

    def visit_Attribute(self, node):
        d = _dotted(node)
        if d and (d.endswith("importlib.reload") or d.startswith("importlib.reload")):
            self.reload = True
        if d and d.split(".")[0] in self.modules and ".grade" in "." + d:
            self.grader |= d.split(".")[1:2] == ["grade"]
        self.generic_visit(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id == "__import__" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self.grader |= arg.value.startswith("tinynet.grade")
        self.generic_visit(node)


class _Uses(ast.NodeVisitor):
    """Inside one graded definition: uses of forbidden tinynet names, autograd in backward."""

    def __init__(self, imports, forbidden, is_class):
        self.imports, self.forbidden, self.is_class = imports, forbidden, is_class
        self.found = None
        self.in_backward = 0

    def visit_Name(self, node):
        origin = self.imports.names.get(node.id)
        if origin and origin[1] in self.forbidden and self.found is None:
            self.found = _own(f"your code (via {node.id})", f"{origin[0]}.{origin[1]}")

    def visit_Attribute(self, node):
        d = _dotted(node)
        if (d and node.attr in self.forbidden and d.split(".")[0] in self.imports.modules
                and self.found is None):
            self.found = _own("your code", d)
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        inside = self.is_class and node.name == "backward"
        self.in_backward += inside
        self.generic_visit(node)
        self.in_backward -= inside

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        f = node.func
        if (self.in_backward and isinstance(f, ast.Attribute) and f.attr == "backward"
                and not (isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Name)
                         and f.value.func.id == "super") and self.found is None):
            self.found = ("your backward calls .backward() -- tinynet's autograd computing "
                          "the derivative you are asked to write: this part gets 0 points. "
                          "Compute the gradient with numpy.")
        self.generic_visit(node)


def scan(sub, assignment):
    """{part id: message} for the parts whose graded code delegates to tinynet."""
    trees = []
    for piece in sub.pieces:
        try:
            trees.append(ast.parse(piece.source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    imports = _Imports()
    for t in trees:
        imports.visit(t)
    found = {}
    if imports.grader:
        for p in _all_parts(assignment):
            found[p] = ("your code imports the grader (tinynet.grade): a submission must "
                        "not use it, so this part gets 0 points.")
    if imports.reload:
        for p in _all_parts(assignment):
            found.setdefault(p, "your code reloads a module (importlib.reload), which a "
                                "submission must not do: 0 points.")
    graded = GRADED.get(assignment, {})
    for t in trees:
        for node in t.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in graded:
                parts, forbidden = graded[node.name]
                uses = _Uses(imports, forbidden, isinstance(node, ast.ClassDef)
                             and node.name in BACKWARD)
                uses.visit(node)
                if uses.found:
                    for p in parts:
                        found.setdefault(p, uses.found)
    return found
