"""GroupDRO (Sagawa et al. 2020, Algorithm 1): exponentiated-gradient weights on the domains' losses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from iga.algorithms.base import Algorithm
from iga.algorithms.hparam_checks import check_number
from iga.algorithms.registry import register_algorithm


@dataclass
class GroupDROHParams:
    """GroupDRO options.

    Attributes:
        eta: step size η > 0 of the exponentiated update ``q_k ← q_k·exp(η·L_k)`` (DomainBed ``groupdro_eta``).
    """

    eta: float = 1e-2

    def __post_init__(self) -> None:
        check_number(self, "eta", min_value=0, min_inclusive=False)


def groupdro_update(q: Tensor, per_domain_losses: Tensor, eta: float) -> Tensor:
    """One mirror-ascent step on the simplex: ``q ← q ⊙ exp(η·L) / Σ(q ⊙ exp(η·L))`` (losses detached).

    Computed as a softmax of ``log q + η·L`` so that large ``η·L`` cannot overflow.

    Example:
        >>> import torch, math
        >>> q = groupdro_update(torch.tensor([0.5, 0.5]), torch.tensor([0.0, math.log(3.0)]), eta=1.0)
        >>> [round(v, 6) for v in q.tolist()]
        [0.25, 0.75]
    """
    return torch.softmax(q.log() + eta * per_domain_losses.detach().to(q.dtype), dim=0)


@register_algorithm("groupdro")
class GroupDRO(Algorithm):
    """Group distributionally robust optimisation: ``q ← normalise(q ⊙ exp(η·L))``, then ``L = Σ_k q_k L_k``.

    ``q`` starts uniform, persists across steps and is saved by :meth:`state_dict` (resume is exact).

    Deviations from DomainBed's ``GroupDRO``: DomainBed runs one forward per domain; here the per-domain losses
    come from one forward of the domain-major batch (the same numbers). ``q`` is updated as a softmax of
    ``log q + η·L`` (no overflow for large ``η·L``). With gradient accumulation, ``q`` is updated once per micro-batch (each call of
    :meth:`loss`), i.e. each micro-batch counts as one of DomainBed's minibatches.

    Example:
        >>> import torch
        >>> dro = GroupDRO(num_domains=2, eta=1.0)
        >>> float(dro.loss(torch.tensor([0.0, 1.0]), step=0)) > 0.5   # the worse domain weighs more
        True
    """

    hparams_cls = GroupDROHParams

    def __init__(self, *, num_domains: int, **hparams: Any) -> None:
        super().__init__(num_domains=num_domains, **hparams)
        self.q = torch.full((num_domains,), 1.0 / num_domains)

    def combine_losses(self, per_domain_losses: Tensor, step: int) -> Tensor:
        dtype = torch.promote_types(per_domain_losses.dtype, torch.float32)
        q = self.q.to(device=per_domain_losses.device, dtype=dtype)
        self.q = groupdro_update(q, per_domain_losses, self.hparams.eta)
        self.last_metrics = {f"q/{k}": self.q[k] for k in range(self.num_domains)}
        return (self.q * per_domain_losses).sum()

    def state_dict(self) -> dict[str, Any]:
        return {"q": self.q.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"q"}:
            raise ValueError(f"groupdro: state must have exactly the key 'q', got {sorted(state)}")
        q = torch.as_tensor(state["q"])
        q = q if q.is_floating_point() else q.float()
        if q.shape != (self.num_domains,):
            raise ValueError(
                f"groupdro: state 'q' must have shape ({self.num_domains},), got {tuple(q.shape)}"
            )
        if not (bool(torch.isfinite(q).all()) and bool((q > 0).all()) and abs(float(q.sum()) - 1.0) < 1e-5):
            raise ValueError(f"groupdro: state 'q' must be positive weights summing to 1, got {q.tolist()}")
        self.q = q.clone()
