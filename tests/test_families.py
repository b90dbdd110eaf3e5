"""Which family runs a kernel factory, and what warm-up it needs: by the identity of blackjax's
objects or by the factory's signature, never by its name."""

import blackjax
import jax.numpy as jnp
import optax
import pytest

import jno
from jno.family import SamplerFamily, Tuner, kernel_family, registered_families
from jno.solve.blocks.adjusted_mclmc import AdjustedMCLMCBlock
from jno.solve.blocks.mclmc import MCLMCBlock
from jno.solve.blocks.mcmc import HMCBlock, MCMCBlock
from jno.solve.blocks.sgmcmc import SGMCMCBlock
from jno.solve.blocks.smc import TemperedSMCBlock
from jno.solve.blocks.vi import MeanFieldVIBlock


def settings(factory, **kwargs):
    a = jno.np.parameter((1,), name="a", init=0.0)
    a.bayesian(factory, **kwargs)
    return a.groups[0].settings


def nuts(logdensity_fn, step_size, inverse_mass_matrix):
    """A user's kernel that shares blackjax.nuts's name and signature."""
    return blackjax.nuts(logdensity_fn, step_size, inverse_mass_matrix)


def my_sgld(grad_estimator):
    return blackjax.sgld(grad_estimator)


@pytest.mark.parametrize(
    "factory, family",
    [
        (blackjax.nuts, HMCBlock),
        (blackjax.hmc, HMCBlock),
        (blackjax.dynamic_hmc, HMCBlock),
        (blackjax.multinomial_hmc, HMCBlock),
        (blackjax.mala, MCMCBlock),
        (blackjax.rmhmc, MCMCBlock),  # its own mass matrix: not window-adapted
        (nuts, MCMCBlock),  # a name is not an identity
        (blackjax.mclmc, MCLMCBlock),
        (blackjax.adjusted_mclmc_dynamic, AdjustedMCLMCBlock),
        (blackjax.adjusted_mclmc, AdjustedMCLMCBlock),
        (blackjax.adaptive_tempered_smc, TemperedSMCBlock),
        (blackjax.tempered_smc, TemperedSMCBlock),  # claimed, then refused with the fix
        (blackjax.sgld, SGMCMCBlock),
        (blackjax.sghmc, SGMCMCBlock),
        (my_sgld, SGMCMCBlock),
        (blackjax.meanfield_vi, MeanFieldVIBlock),
    ],
)
def test_factories_are_claimed_by_identity_or_signature(factory, family):
    assert kernel_family(factory, "test") is family


def test_families_declare_their_tuner():
    assert HMCBlock.tuner is Tuner.WINDOW
    assert MCLMCBlock.tuner is Tuner.OWN
    assert MCMCBlock.tuner is SGMCMCBlock.tuner is MeanFieldVIBlock.tuner is Tuner.NONE
    for family in registered_families():
        assert isinstance(family.family, str) and isinstance(family.tuner, Tuner)
        assert all(callable(getattr(family, m)) for m in ("claims", "validate", "adapts"))
    assert SamplerFamily.__annotations__.keys() >= {"family", "priority", "tuner"}


def test_adapts_is_the_tuner_with_adapt_and_warmup():
    assert settings(blackjax.nuts).adapts
    assert not settings(blackjax.nuts, adapt=False, step_size=0.1).adapts
    assert not settings(blackjax.nuts, warmup=0, step_size=0.1).adapts
    assert settings(blackjax.mclmc).adapts
    assert not settings(blackjax.mala, step_size=0.1).adapts
    assert not settings(nuts, step_size=0.1, inverse_mass_matrix=jnp.ones(1)).adapts


def test_a_kernel_without_a_tuner_needs_a_step_size():
    with pytest.raises(ValueError, match="needs step_size="):
        settings(nuts, inverse_mass_matrix=jnp.ones(1))
    with pytest.raises(ValueError, match="needs step_size="):
        settings(blackjax.nuts, adapt=False)


def test_vi_is_claimed_by_identity():
    a = jno.np.parameter((1,), name="a", init=0.0)
    a.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2))
    assert a.groups[0].settings.family is MeanFieldVIBlock
    with pytest.raises(ValueError, match="supports blackjax.meanfield_vi"):
        jno.np.parameter((1,), name="b", init=0.0).vi(blackjax.fullrank_vi, optimizer=optax.sgd(1))
