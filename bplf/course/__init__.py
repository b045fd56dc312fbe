"""The course tooling: the exercises' checkers (one module per lesson), the student release and
grading, the notebooks' commit guard, the widgets and the figures of the lessons. Built on the
core library and the research harness; neither imports it."""
