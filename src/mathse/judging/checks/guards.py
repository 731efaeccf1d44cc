"""The cheap guard: `too_large` finds, without sympy, answers with huge powers or towers, factorials or binomials
of large numbers, sums and products of many terms, or deep nesting, so they are refused before sympy sees them.
Standard library only, as the rest of mathse.judging.checks."""

from __future__ import annotations

import math

MAX_DIGITS = 100_000  # 9^{99999} (95k digits) checks in 0.3 s; 99999999^{99999999} never ends
MAX_FACTORIAL = 100_000  # 100000! checks in 0.3 s; (10!)! never ends
MAX_TERMS = 100_000  # \sum / \prod with more terms (a sum of k! to 10^8 never ends)
MAX_NESTING = 10  # brackets inside brackets: 20 nested \frac take minutes, 60 parentheses 15 s to parse
_SKIP = {"\\left", "\\right", "\\,", "\\;", "\\!", "\\:", "\\quad", "\\qquad", "\\displaystyle", "\\mathrm", "\\text"}
_TIMES = {"*", "\\cdot", "\\times", "/", "\\div"}
_CONSTANTS = {"\\pi", "\\e", "e", "\\varpi"}
_OPEN = {"{": "}", "(": ")", "[": "]"}


class _TooLarge(Exception):
    pass


def _tokens(text: str) -> list[str]:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            out.append(text[i:j])
            i = j
        elif c == "\\":
            j = i + 1
            while j < n and text[j].isalpha():
                j += 1
            j = max(j, min(i + 2, n))
            if text[i:j] not in _SKIP:
                out.append(text[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return out


def _nesting(text: str) -> int:
    depth = deepest = 0
    for c in text:
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth = max(0, depth - 1)
    return deepest


class _Magnitudes:
    """A recursive-descent reading of LaTeX arithmetic that bounds log10 |value| of every numeric part.

    Each parse returns an upper bound of log10(max(1, |value|)), or None for a part with symbols; a part
    whose number would be too large raises _TooLarge. Division and fractions are bounded by their
    numerator: a guard, not an evaluator (the worker's time limit catches what it misses).
    """

    def __init__(self, text: str) -> None:
        self.t = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.i += 1
        return tok

    def expr(self, close: str | None = None) -> float | None:
        terms: list[float | None] = []
        while self.peek() is not None and self.peek() != close:
            if self.peek() in ("+", "-", "=", ",", ";", "<", ">", "\\pm", "\\approx", "\\leq", "\\geq"):
                self.take()
                continue
            if self.peek() in ("}", ")", "]"):  # a stray closing bracket
                self.take()
                continue
            terms.append(self.term(close))
        if close is not None and self.peek() == close:
            self.take()
        if not terms or any(t is None for t in terms):
            return None
        return max(terms) + math.log10(len(terms))

    def term(self, close: str | None) -> float | None:
        total: float | None = 0.0
        divide = False
        while self.peek() is not None and self.peek() not in ("+", "-", "=", ",", ";", "}", ")", "]", close):
            if self.peek() in _TIMES:
                divide = self.take() in ("/", "\\div")
                continue
            f = self.factor()
            if not divide:
                total = None if total is None or f is None else total + f
            divide = False
        return total

    def group(self) -> float | None:
        """The next atom as a script or argument: {..}, a bracketed group, or one token."""
        tok = self.peek()
        if tok in _OPEN:
            self.take()
            return self.expr(_OPEN[tok])
        return self.atom()

    def atom(self) -> float | None:
        tok = self.take()
        if tok is None:
            return None
        if tok in _OPEN:
            return self.expr(_OPEN[tok])
        if tok[0].isdigit() or tok[0] == ".":
            whole = tok.split(".")[0].lstrip("0")
            if len(whole) > 15:
                return float(len(whole))
            return math.log10(int(whole)) if whole else 0.0
        if tok in ("\\frac", "\\dfrac", "\\tfrac", "\\cfrac"):
            num = self.group()
            self.group()
            return num
        if tok == "\\sqrt":
            if self.peek() == "[":
                self.take()
                self.expr("]")
            inner = self.group()
            return None if inner is None else inner / 2
        if tok in ("\\binom", "\\dbinom", "\\tbinom"):
            n, k = self.group(), self.group()
            if n is not None and n > math.log10(MAX_FACTORIAL):
                raise _TooLarge
            return None if n is None or k is None else 10**n * math.log10(2)
        if tok in ("\\sum", "\\prod"):
            for _ in range(2):  # _{k=1}^{n} in either order
                if self.peek() in ("_", "^"):
                    script = self.take()
                    bound = self.group()
                    if script == "^" and bound is not None and bound > math.log10(MAX_TERMS):
                        raise _TooLarge
            return None
        if tok in _CONSTANTS:
            return 0.5
        return None  # a letter, a command, a symbol

    def factor(self) -> float | None:
        value = self.atom()
        while self.peek() in ("^", "!", "_", "'"):
            op = self.take()
            if op == "^":
                exponent = self.group()
                value = self._power(value, exponent)
            elif op == "!":
                value = self._factorial(value)
            elif op == "_":
                self.group()
        return value

    @staticmethod
    def _power(base: float | None, exponent: float | None) -> float | None:
        if exponent is None:
            return None
        if exponent > math.log10(MAX_DIGITS) + 1 and base is not None:
            raise _TooLarge
        digits = 10**exponent * max(base if base is not None else 0.5, math.log10(2))
        if digits > MAX_DIGITS:
            if base is not None:
                raise _TooLarge
            return None
        return None if base is None else digits

    @staticmethod
    def _factorial(value: float | None) -> float | None:
        if value is None:
            return None
        if value > math.log10(MAX_FACTORIAL):
            raise _TooLarge
        n = 10**value
        return n * math.log10(max(n, 2))


def too_large(text: str) -> bool:
    """Would sympy meet a huge number (or a parser a deep nesting) in this answer? Cheap, never raises."""
    if _nesting(text) > MAX_NESTING:
        return True
    try:
        _Magnitudes(text).expr()
    except _TooLarge:
        return True
    except (RecursionError, IndexError, ValueError, OverflowError):
        return True
    return False
