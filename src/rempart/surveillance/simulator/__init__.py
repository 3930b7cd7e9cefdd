"""The traffic simulator: the people of a synthetic hospital using the API through
real tokens over HTTP on loopback, with a labelled log of who did what
(docs/simulator.md).

- ``world``: the hospital as the roster describes it (who cares for whom);
- ``actors``: the simulated people and systems, and their shifts;
- ``scenarios`` and ``attacks``: what they do, as :class:`Action` plans;
- ``plan``: the seeded sequence of actions, in simulated time;
- ``accounts``: registering the accounts and clients in the auth store;
- ``http``: the only module that speaks HTTP (SMART flows, requests);
- ``runner``: paced, bounded, concurrent execution and the labelled log.
"""
