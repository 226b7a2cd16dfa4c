"""A static look for solutions that delegate to tinynet instead of doing the exercise.

The dynamic check (tinynet.grade.student.refuse) makes tinynet's own
implementation refuse to run while a part is checked; this reads the source
too, so a submission that hides the call from the dynamic check (a saved
copy, a reload) is still caught.  Rules, per part:

* importing the grader (``tinynet.grade``) or reloading a module: every part
* hw1 Dense / softmax parts: ``.backward(...)`` called inside a ``backward``
  method (the autograd engine doing the student's derivative), or tinynet's
  ``dense`` / ``softmax_cross_entropy`` / ``nll_loss``
* hw2 col2im: any ``col2im`` taken from tinynet; conv parts: ``.backward(...)``
  inside ``backward``, tinynet's ``conv2d``
* hw3 effective_width: tinynet.diagnose's ``effective_width`` / ``symmetry``
"""
import ast

_TINYNET_NAMES = {
    "hw1_dense_softmax": {
        "dense": ["dense_dx", "dense_dw", "dense_db"],
        "softmax_cross_entropy": ["softmax_ce_forward", "softmax_ce_backward"],
        "nll_loss": ["softmax_ce_forward", "softmax_ce_backward"],
    },
    "hw2_conv_backward": {
        "col2im": ["col2im"],
        "conv2d": ["conv_dw", "conv_db", "conv_dx"],
    },
    "hw3_freeze_detector": {
        "effective_width": ["effective_width"],
        "symmetry": ["effective_width"],
        "group_units": ["effective_width"],
    },
}
_BACKWARD_PARTS = {
    "hw1_dense_softmax": ["dense_dx", "dense_dw", "dense_db", "softmax_ce_backward"],
    "hw2_conv_backward": ["conv_dw", "conv_db", "conv_dx"],
}
_ALL = {"hw1_dense_softmax": ["dense_dx", "dense_dw", "dense_db", "softmax_ce_forward",
                              "softmax_ce_backward"],
        "hw2_conv_backward": ["col2im", "conv_dw", "conv_db", "conv_dx"],
        "hw3_freeze_detector": ["find_zero_input_rows", "frozen_rows_after_training",
                                "effective_width"]}


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class _Scan(ast.NodeVisitor):
    def __init__(self, assignment, tinynet_aliases):
        self.assignment = assignment
        self.names = _TINYNET_NAMES.get(assignment, {})
        self.aliases = tinynet_aliases        # local names bound to tinynet modules
        self.found = {}                       # part id -> message
        self.in_backward = 0

    def flag(self, parts, why):
        for p in parts:
            self.found.setdefault(p, why)

    def visit_Import(self, node):
        for a in node.names:
            self._module(a.name)
            if a.name.split(".")[0] == "tinynet":
                self.aliases.add(a.asname or a.name.split(".")[0])
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        mod = node.module or ""
        self._module(mod)
        if mod.split(".")[0] == "tinynet":
            for a in node.names:
                self._module(f"{mod}.{a.name}")
                if a.name in self.names:
                    self.flag(self.names[a.name],
                              f"your code imports tinynet's own {a.name} (from {mod}): this exercise is to "
                              f"write it yourself, so this part gets 0 points.")
                self.aliases.add(a.asname or a.name)
        if mod == "importlib":
            for a in node.names:
                if a.name == "reload":
                    self._reload()
        self.generic_visit(node)

    def _module(self, name):
        if name == "tinynet.grade" or name.startswith("tinynet.grade."):
            self.flag(_ALL.get(self.assignment, []),
                      "your code imports the grader (tinynet.grade): a submission must not "
                      "use it, so this part gets 0 points.")

    def _reload(self):
        self.flag(_ALL.get(self.assignment, []),
                  "your code reloads a module (importlib.reload), which the grader does not "
                  "allow in a submission: 0 points.")

    def visit_Attribute(self, node):
        dotted = _dotted(node)
        if dotted:
            head = dotted.split(".")[0]
            if node.attr in self.names and head in self.aliases:
                self.flag(self.names[node.attr],
                          f"your code uses tinynet's own {dotted}: this exercise is to write "
                          f"it yourself, so this part gets 0 points.")
            if dotted.endswith("importlib.reload") or dotted == "importlib.reload":
                self._reload()
            if head in self.aliases and (".grade" in "." + dotted.split(".", 1)[-1]
                                         and dotted.split(".")[1:2] == ["grade"]):
                self._module("tinynet.grade")
        self.generic_visit(node)

    def visit_FunctionDef(self, node):
        inside = node.name == "backward"
        self.in_backward += inside
        self.generic_visit(node)
        self.in_backward -= inside

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        f = node.func
        if (self.in_backward and isinstance(f, ast.Attribute) and f.attr == "backward"
                and not (isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Name)
                         and f.value.func.id == "super")):
            self.flag(_BACKWARD_PARTS.get(self.assignment, []),
                      "your backward calls .backward() -- tinynet's autograd computing the "
                      "derivative you are asked to write: this part gets 0 points. Compute "
                      "the gradient with numpy.")
        if isinstance(f, ast.Name) and f.id == "__import__":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._module(arg.value)
        self.generic_visit(node)


def scan(sub, assignment):
    """{part id: message} for the parts whose code delegates to tinynet."""
    aliases = set()
    found = {}
    for piece in sub.pieces:
        try:
            tree = ast.parse(piece.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        s = _Scan(assignment, aliases)
        s.visit(tree)
        for k, v in s.found.items():
            found.setdefault(k, v)
    return found
