"""Rate limits of the gateway (design.md, "Security gateway"): a sliding window per
client address before authentication, per client or user after, with weighted costs.

``policy`` says what a request costs and whose budget pays; ``limiter`` keeps the
budgets, in memory for one process or in Redis for several.
"""

from rempart.security.ratelimit.limiter import Decision, RateLimiter, too_many
from rempart.security.ratelimit.policy import cost, payer

__all__ = ["Decision", "RateLimiter", "cost", "payer", "too_many"]
