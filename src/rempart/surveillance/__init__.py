"""Surveillance: watching Rempart's own traffic. For now the traffic simulator
(``simulator/``), which makes labelled traffic for the detectors to be scored against."""
