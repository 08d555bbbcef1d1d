"""Every attack by name, in one place: ``build(name, model, eps, settings)``.

The attack classes hold their own defaults and step rules (eval.attacks: BIM and PGD take
``step_scale`` * eps / steps, 2.5 by default; MI-FGSM eps / steps; eval.apgd, eval.fab,
eval.square; the suite eval.autoattack); this module maps names to classes and hands each the
settings it takes. Every tool, the AutoAttack suite and the main job build attacks here.

Kinds (``names(kind)``):
* classifier (logits; labels y): fgsm, bim, pgd, mifgsm, cw, and AutoAttack's members apgd-ce,
  apgd-dlr, apgd-t, fab-t, square and suites autoattack, autoattack-fast;
* embedding (a face pair's partner embedding y; ``settings.scenario`` impersonation = toward
  it, dodging = away from it, decided at ``settings.threshold``): fftgsm, iftgsm, miftgsm (the
  MTER paper's names; in dodging the same steps raise the distance), apgd, square, autoattack,
  autoattack-fast.

One vocabulary: ``eps`` (the L-inf radius), ``step`` (a step's size), ``steps`` (how many).
"""
import collections
import dataclasses

from eval import apgd, attacks, autoattack, fab, square

SCENARIOS = ('impersonation', 'dodging')


@dataclasses.dataclass(frozen=True)
class Budget:
    """AutoAttack's budget: APGD/FAB ``iterations``, APGD-T/FAB-T ``targets``, Square
    ``queries``, APGD ``restarts``; ``version``: standard (all four stages) or fast."""
    iterations: int = 100
    targets: int = 9
    queries: int = 5000
    restarts: int = 1
    version: str = 'standard'

    @property
    def standard(self):
        """The reference's standard settings (github.com/fra31/auto-attack)."""
        return self == Budget()

    def as_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_args(cls, args, **override):
        """From eval.cli.add_autoattack_args' flags (missing ones: the reference's)."""
        values = {f.name: getattr(args, 'aa_' + f.name, None) for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if v is not None}
        values.update(override)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """What an attack may take beyond (model, eps). None: the attack's own default (steps) or
    rule (step). ``threshold``/``scenario``: embedding attacks only."""
    steps: int = None
    step: float = None
    step_scale: float = None
    mu: float = 1.0
    restarts: int = 1
    seed: int = 0
    pixel_range: tuple = (0.0, 1.0)
    budget: Budget = Budget()
    threshold: float = None
    scenario: str = None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


Spec = collections.namedtuple('Spec', 'kinds make')


def _iterative(cls, s, **extra):
    kw = dict(step=s.step, restarts=s.restarts, **extra)
    if s.steps is not None:
        kw['steps'] = s.steps
    if s.step_scale is not None and 'step_scale' in cls.__init__.__code__.co_varnames:
        kw['step_scale'] = s.step_scale
    return kw


def _classifier(cls, **fixed):
    def make(model, eps, s):
        kw = {} if cls is attacks.FGSM else _iterative(cls, s)
        if cls is attacks.MIFGSM:
            kw['mu'] = s.mu
        return cls(model, eps, pixel_range=s.pixel_range, seed=s.seed, **dict(kw, **fixed))
    return make


def _feature(cls):
    """fftgsm / iftgsm / miftgsm: toward the partner (impersonation) or away (dodging)."""
    def make(model, eps, s):
        kw = {} if cls is attacks.FGSM else _iterative(cls, s)
        if cls is attacks.MIFGSM:
            kw['mu'] = s.mu
        return cls(model, eps, targeted=_targeted(s), threshold=s.threshold,
                   pixel_range=s.pixel_range, seed=s.seed, **kw)
    return make


def _targeted(s):
    if s.scenario not in SCENARIOS:
        raise ValueError('an attack on an embedding needs settings.scenario, one of %s; got %r'
                         % (', '.join(SCENARIOS), s.scenario))
    return s.scenario == 'impersonation'


def _member(name):
    def make(model, eps, s):
        b = s.budget
        common = dict(pixel_range=s.pixel_range, seed=s.seed)
        on_embedding = model.output == 'embedding'
        feature = dict(targeted=_targeted(s), loss='cos', threshold=s.threshold) \
            if on_embedding else {}
        if name in ('apgd-ce', 'apgd-dlr'):
            made = apgd.APGD(model, eps, steps=b.iterations, loss=name[5:],
                             restarts=b.restarts, **common)
        elif name == 'apgd-t':
            made = apgd.APGDT(model, eps, steps=b.iterations, num_targets=b.targets, **common)
        elif name == 'fab-t':
            made = fab.FAB(model, eps, steps=b.iterations, num_targets=b.targets, **common)
        elif name == 'apgd':
            made = apgd.APGD(model, eps, steps=b.iterations, restarts=b.restarts,
                             **dict(common, **feature))
        else:  # square; another budget than the reference's 5000: its schedule rescaled
            made = square.Square(model, eps, queries=b.queries,
                                 rescale_schedule=b.queries != Budget().queries,
                                 **dict(common, **feature))
        made.name = name
        return made
    return make


def _suite(version):
    def make(model, eps, s):
        feature = dict(targeted=_targeted(s), loss='cos', threshold=s.threshold) \
            if model.output == 'embedding' else {}
        return autoattack.AutoAttack(model, eps, dataclasses.replace(s.budget, version=version),
                                     pixel_range=s.pixel_range, seed=s.seed, **feature)
    return make


C, E = ('classifier',), ('embedding',)
REGISTRY = collections.OrderedDict([
    ('fgsm', Spec(C, _classifier(attacks.FGSM))),
    ('bim', Spec(C, _classifier(attacks.BIM))),
    ('pgd', Spec(C, _classifier(attacks.PGD))),
    ('mifgsm', Spec(C, _classifier(attacks.MIFGSM))),
    ('cw', Spec(C, _classifier(attacks.CWLinf))),
    ('fftgsm', Spec(E, _feature(attacks.FGSM))),
    ('iftgsm', Spec(E, _feature(attacks.BIM))),
    ('miftgsm', Spec(E, _feature(attacks.MIFGSM))),
    ('apgd-ce', Spec(C, _member('apgd-ce'))),
    ('apgd-dlr', Spec(C, _member('apgd-dlr'))),
    ('apgd-t', Spec(C, _member('apgd-t'))),
    ('fab-t', Spec(C, _member('fab-t'))),
    ('apgd', Spec(E, _member('apgd'))),
    ('square', Spec(C + E, _member('square'))),
    ('autoattack', Spec(C + E, _suite('standard'))),
    ('autoattack-fast', Spec(C + E, _suite('fast'))),
])
SUITES = {'autoattack': 'standard', 'autoattack-fast': 'fast'}
MEMBERS = ('apgd-ce', 'apgd-dlr', 'apgd-t', 'fab-t', 'apgd', 'square')
AUTOATTACK = tuple(SUITES) + MEMBERS          # names whose budget is a Budget
BLACK_BOX = ('square',)


def names(kind):
    """Attack names for a 'classifier' or an 'embedding' model, in registry order."""
    return tuple(n for n, spec in REGISTRY.items() if kind in spec.kinds)


def build(name, model, eps, settings=AttackSettings()):
    """The attack ``name`` on ``model`` (eval.model.Network) with budget ``eps``."""
    spec = REGISTRY.get(name)
    kind = 'embedding' if model.output == 'embedding' else 'classifier'
    if spec is None or kind not in spec.kinds:
        raise ValueError('unknown attack %r for a model with %s output: expected one of %s'
                         % (name, model.output, ', '.join(names(kind))))
    return spec.make(model, eps, settings)
