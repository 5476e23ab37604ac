"""Playbooks: the rules an administrator edits, as data: routing, SLA, reply templates,
escalation chains, crisis thresholds and approval tiers.

A playbook is a directory of YAML files validated once at start-up, one module per file:
routing_rules.py, sla_rules.py, reply_templates.py, escalation_rules.py, crisis_rules.py,
approval_rules.py (approval.yaml, the one optional file).
Every mistake is reported as `file: field.path: message`, all at once, so the administrator
fixes the files in one pass; a bad playbook stops the bot rather than misrouting cases at
three in the morning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path

from jinja2 import TemplateSyntaxError, meta
from pydantic import BaseModel, ValidationError

from bot.model import ApproverRole, Priority
from bot.settings.approval_rules import APPROVAL_FILE, ApprovalConfig, Chain
from bot.settings.case_codes import CodesConfig
from bot.settings.crisis_rules import CrisisConfig, ThresholdScope
from bot.settings.drill_scenarios import DRILLS_DIR, DrillScenario, load_scenarios
from bot.settings.errors import (
    Problem,
    SettingsError,
    field_problems,
    item_label,
    name_items,
    unknown_name,
)
from bot.settings.escalation_rules import EscalationChain, EscalationConfig
from bot.settings.fields import OneOrMoreLocales, StrictModel
from bot.settings.reply_templates import (
    CITIZEN_VARIABLES,
    REPLY_ENV,
    REPLY_VARIABLES,
    ReplyTemplate,
    TemplateKind,
    TemplatesConfig,
)
from bot.settings.routing_rules import RoutingConfig
from bot.settings.sla_rules import ALWAYS_OPEN, SlaConfig, SlaPolicy, WorkCalendar, build_calendars
from bot.settings.yamlfile import YamlError, read_yaml, top_level_problem
from playbooks import PLAYBOOKS_DIR

__all__ = [
    "DEFAULT_PLAYBOOK_DIR",
    "PLAYBOOK_FILES",
    "Playbook",
    "PlaybookError",
    "load_playbook",
]

PLAYBOOK_FILES = ("routing.yaml", "sla.yaml", "templates.yaml", "escalation.yaml", "crisis.yaml")
CODES_FILE = "codes.yaml"  # optional: without it, nothing is coded from the chat
# bot/ and playbooks/ are installed side by side, in a checkout and in a wheel alike.
DEFAULT_PLAYBOOK_DIR = PLAYBOOKS_DIR / "default"


class PlaybookError(SettingsError):
    """The playbook cannot be used; `problems` lists every (file, field path, message)."""


class Playbook(StrictModel):
    path: Path
    routing: RoutingConfig
    sla: SlaConfig
    templates: tuple[ReplyTemplate, ...]
    escalation: EscalationConfig
    crisis: CrisisConfig
    calendars: dict[str, WorkCalendar]  # including the built-in "24x7"
    drills: dict[str, DrillScenario] = {}  # drills/*.yaml by scenario id (file name)
    codes: CodesConfig = CodesConfig()  # codes.yaml, optional: the lists staff code cases with
    approval: ApprovalConfig = ApprovalConfig()  # approval.yaml; one tier without it
    signature: OneOrMoreLocales | None = None  # templates.yaml: closes answers sent by e-mail

    def file(self, name: str) -> Path:
        return self.path / name

    @cached_property
    def _templates_by_id(self) -> dict[str, ReplyTemplate]:
        return {t.id: t for t in self.templates}

    def template(self, template_id: str) -> ReplyTemplate:
        try:
            return self._templates_by_id[template_id]
        except KeyError:
            raise KeyError(f"no reply template {template_id!r}") from None

    def templates_for(
        self, department: str, kind: TemplateKind | None = None
    ) -> list[ReplyTemplate]:
        """Templates offered in a department, in file order."""
        return [
            t
            for t in self.templates
            if (not t.departments or department in t.departments)
            and (kind is None or t.kind is kind)
        ]

    def sla_policy(self, name: str) -> SlaPolicy:
        try:
            return self.sla.policies[name]
        except KeyError:
            raise KeyError(f"no SLA policy {name!r}") from None

    def sla_policy_for(
        self, department: str, priority: Priority, override: str | None = None
    ) -> tuple[str, SlaPolicy]:
        """The policy for a case: a routing rule's override, then by_department, then
        by_priority."""
        name = (
            override
            or self.sla.by_department.get(department, {}).get(priority)
            or self.sla.by_priority.get(priority)
        )
        return name, self.sla_policy(name)

    def calendar(self, name: str) -> WorkCalendar:
        try:
            return self.calendars[name]
        except KeyError:
            raise KeyError(f"no calendar {name!r}") from None

    def working_calendars(self, department: str | None = None) -> list[str]:
        """Calendars that count less than every minute, in sla.yaml's order: those the
        department's policies use, or all of them."""
        if department is None:
            used = set(self.calendars)
        else:
            used = {self.sla_policy_for(department, p)[1].calendar for p in Priority}
        return [n for n, c in self.calendars.items() if n in used and not c.always_open]

    def approval_chain(
        self, department: str, priority: Priority, codes: Iterable[str] = ()
    ) -> Chain:
        """The approval tiers a draft of such a case goes through (approval.yaml)."""
        return self.approval.chain_for(department, priority, codes)

    def chain(self, name: str) -> EscalationChain:
        try:
            return self.escalation.chains[name]
        except KeyError:
            raise KeyError(f"no escalation chain {name!r}") from None

    def department_refs(self) -> Iterator[tuple[str, Path, str]]:
        """Every department the playbook names, with where: (department, file, field path)."""
        routing, sla = self.file("routing.yaml"), self.file("sla.yaml")
        for i, rule in enumerate(self.routing.rules):
            yield rule.department, routing, f"{item_label('rule', 'rules', i, rule.id)}.department"
        yield self.routing.default.department, routing, "default.department"
        for dept in self.sla.by_department:
            yield dept, sla, f"by_department.{dept}"
        for i, template in enumerate(self.templates):
            label = item_label("template", "templates", i, template.id)
            for j, dept in enumerate(template.departments):
                yield dept, self.file("templates.yaml"), f"{label}.departments[{j}]"
        for i, threshold in enumerate(self.crisis.thresholds):
            if threshold.scope is ThresholdScope.DEPARTMENT and threshold.key is not None:
                label = item_label("threshold", "thresholds", i, threshold.id)
                yield threshold.key, self.file("crisis.yaml"), f"{label}.key"
        for i, dimension in enumerate(self.codes.dimensions):
            label = item_label("dimension", "dimensions", i, dimension.id)
            for j, dept in enumerate(dimension.departments):
                yield dept, self.file(CODES_FILE), f"{label}.departments[{j}]"
            for k, code in enumerate(dimension.codes):
                for j, dept in enumerate(code.departments):
                    yield dept, self.file(CODES_FILE), f"{label}.codes[{k}].departments[{j}]"
        for scenario_id, scenario in self.drills.items():
            file = self.path / DRILLS_DIR / f"{scenario_id}.yaml"
            for i, storyline in enumerate(scenario.storylines):
                yield storyline.department, file, f"storylines[{i}].department"
        for i, approval in enumerate(self.approval.rules):
            label = item_label("rule", "rules", i, approval.id)
            for j, dept in enumerate(approval.match.departments):
                yield dept, self.file(APPROVAL_FILE), f"{label}.match.departments[{j}]"

    def check_departments(self, department_ids: set[str] | frozenset[str]) -> list[Problem]:
        """Problems for departments the playbook names but the config does not define."""
        problems: list[Problem] = []
        for dept, file, field in self.department_refs():
            if dept not in department_ids:
                message = unknown_name("department", dept, department_ids, listed_as="configured")
                problems.append((file, field, message))
        return problems

    def check_locale(self, locale: str) -> list[Problem]:
        """Problems for texts the configured locale needs but the playbook does not give: a
        template's title and text, a code's title."""
        problems: list[Problem] = []
        file = self.file("templates.yaml")
        for i, template in enumerate(self.templates):
            for name in ("title", "text"):
                if not getattr(template, name).has(locale):
                    problems.append(
                        (
                            file,
                            f"templates[{i}].{name}.{locale}",
                            f"template {template.id!r} has no {name} in {locale!r}, the "
                            "config's locale",
                        )
                    )
        for code, title in self.routing.code_titles.items():
            if not title.has(locale):
                problems.append(
                    (
                        self.file("routing.yaml"),
                        f"code_titles.{code}.{locale}",
                        f"code {code!r} has no title in {locale!r}, the config's locale",
                    )
                )
        for i, dimension in enumerate(self.codes.dimensions):
            at = f"dimensions[{i}]"
            titled = [(f"{at}.title", dimension.id, dimension.title)]
            titled += [
                (f"{at}.codes[{k}].title", f"{dimension.id}:{code.id}", code.title)
                for k, code in enumerate(dimension.codes)
            ]
            for field, name, text in titled:
                if not text.has(locale):
                    message = f"{name!r} has no title in {locale!r}, the config's locale"
                    problems.append((self.file(CODES_FILE), f"{field}.{locale}", message))
        return problems

    def code_parts(self, code: str, locale: str) -> tuple[str, str]:
        """A chat-set code "<dimension>:<code>" as (the dimension's title, the code's title)
        from codes.yaml, ids where it names neither; a plain code as ("", its title)."""
        dimension_id, colon, code_id = code.partition(":")
        if not colon:
            return "", self.code_title(code, locale)
        for dimension in self.codes.dimensions:
            if dimension.id == dimension_id:
                titles = {c.id: c.title.get(locale) for c in dimension.codes}
                return dimension.title.get(locale), titles.get(code_id, code_id)
        return dimension_id, code_id

    def check_approvers(self, held: Iterable[str]) -> list[Problem]:
        """Problems for approval tiers whose global role no staff member holds (`held`: the
        config's global roles): a draft would wait at that tier for ever."""
        held = set(held)
        file = self.file(APPROVAL_FILE)
        chains = [("default", self.approval.default)] + [
            (item_label("rule", "rules", i, r.id), r) for i, r in enumerate(self.approval.rules)
        ]
        problems: list[Problem] = []
        for label, chain in chains:
            for j, tier in enumerate(chain.tiers):
                if tier is not ApproverRole.DEPARTMENT and tier.value not in held:
                    problems.append(
                        (
                            file,
                            f"{label}.tiers[{j}]",
                            f"no staff member has global_roles: [{tier.value}] in the config: "
                            "drafts would wait at this tier for ever",
                        )
                    )
        return problems

    def code_title(self, code: str, locale: str) -> str:
        """A case code as people read it: "<dimension>:<code>" from codes.yaml as
        "Dimension: Code", a plain one by routing.yaml code_titles; the code itself when the
        playbook gives no title."""
        dimension_id, colon, code_id = code.partition(":")
        if colon:
            for dimension in self.codes.dimensions:
                if dimension.id == dimension_id:
                    for known in dimension.codes:
                        if known.id == code_id:
                            return f"{dimension.title.get(locale)}: {known.title.get(locale)}"
            return code
        title = self.routing.code_titles.get(code) or self.routing.code_titles.get(code.lower())
        return title.get(locale) if title else code

    def known_codes(self) -> set[str]:
        """Codes the playbook knows, casefolded: those its rules add to cases and match on."""
        return {
            code.casefold()
            for rule in self.routing.rules
            for code in (*rule.codes, *rule.match.codes)
        } | {f"{d.id}:{c.id}" for d in self.codes.dimensions for c in d.codes}

    def check_codes(self, feed_codes: Iterable[str] = ()) -> list[Problem]:
        """Problems for crisis thresholds on a code nothing gives a mention: such a
        threshold would never fire. `feed_codes`: codes the config's feeds add."""
        codes = self.known_codes() | {code.casefold() for code in feed_codes}
        problems: list[Problem] = []
        for i, threshold in enumerate(self.crisis.thresholds):
            key = threshold.key
            if threshold.scope is ThresholdScope.CODE and key and key.casefold() not in codes:
                field = f"{item_label('threshold', 'thresholds', i, threshold.id)}.key"
                message = unknown_name("code", key, codes, listed_as="codes in routing.yaml")
                problems.append((self.file("crisis.yaml"), field, message))
        return problems

    def summary(self) -> dict[str, int]:
        return {
            "rules": len(self.routing.rules),
            "urgent_words": len(self.routing.urgent_words) + len(self.routing.critical_words),
            "calendars": len(self.calendars),
            "policies": len(self.sla.policies),
            "templates": len(self.templates),
            "pre_approved_templates": sum(t.pre_approved for t in self.templates),
            "chains": len(self.escalation.chains),
            "thresholds": len(self.crisis.thresholds),
            "checklist_steps": len(self.crisis.checklist),
            "drill_scenarios": len(self.drills),
            "code_dimensions": len(self.codes.dimensions),
            "approval_rules": len(self.approval.rules),
        }


# --- loading --------------------------------------------------------------------------------

_FILE_MODELS: dict[str, type[BaseModel]] = {
    "routing.yaml": RoutingConfig,
    "sla.yaml": SlaConfig,
    "templates.yaml": TemplatesConfig,
    "escalation.yaml": EscalationConfig,
    "crisis.yaml": CrisisConfig,
}


def _load_file(
    file: Path, model: type[BaseModel], problems: list[Problem], raw: dict[Path, object]
) -> BaseModel | None:
    if not file.is_file():
        problems.append((file, "", "file is missing"))
        return None
    try:
        data = read_yaml(file)
    except OSError as exc:
        problems.append((file, "", f"cannot read: {exc.strerror or exc}"))
        return None
    except YamlError as exc:
        problems.extend(exc.problems)
        return None
    raw[file] = data
    wrong = top_level_problem(data)
    if wrong is not None or not isinstance(data, dict):
        problems.append((file, "", wrong or ""))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = field_problems(exc, model, echo_input=True, list_allowed=True)
        problems.extend((file, field, message) for field, message in fields)
        return None


# Items with ids are named by them: `rule "school-heating" (rules[9]).match`.
_ITEM_NOUNS = {
    "routing.yaml": {"rules": "rule"},
    "templates.yaml": {"templates": "template"},
    "crisis.yaml": {"thresholds": "threshold"},
    CODES_FILE: {"dimensions": "dimension"},
    APPROVAL_FILE: {"rules": "rule"},
}


def _named(problems: list[Problem], raw: dict[Path, object]) -> list[Problem]:
    return [
        (file, name_items(field, raw.get(file), _ITEM_NOUNS.get(file.name, {})), message)
        for file, field, message in problems
    ]


def load_playbook(path: Path) -> Playbook:
    """Read and check a playbook directory; raises PlaybookError listing every problem."""
    path = Path(path)
    if not path.is_dir():
        raise PlaybookError([(path, "", "playbook directory not found")])
    problems: list[Problem] = []
    raw: dict[Path, object] = {}
    loaded = {
        name: _load_file(path / name, model, problems, raw) for name, model in _FILE_MODELS.items()
    }
    approval = ApprovalConfig()
    if (path / APPROVAL_FILE).exists():  # optional: one tier, the department's approver
        found = _load_file(path / APPROVAL_FILE, ApprovalConfig, problems, raw)
        approval = found if isinstance(found, ApprovalConfig) else approval
    if problems:
        raise PlaybookError(_named(problems, raw))
    routing = loaded["routing.yaml"]
    sla = loaded["sla.yaml"]
    templates = loaded["templates.yaml"]
    escalation = loaded["escalation.yaml"]
    crisis = loaded["crisis.yaml"]
    assert isinstance(routing, RoutingConfig) and isinstance(sla, SlaConfig)
    assert isinstance(templates, TemplatesConfig) and isinstance(escalation, EscalationConfig)
    assert isinstance(crisis, CrisisConfig)

    calendars = build_calendars(path, sla, problems)
    drills = load_scenarios(path, problems)
    _check_routing(path / "routing.yaml", routing, sla, problems)
    _check_sla(path / "sla.yaml", sla, escalation, problems)
    _check_templates(path / "templates.yaml", templates, problems)
    _check_escalation(path / "escalation.yaml", escalation, problems)
    _check_crisis(path / "crisis.yaml", crisis, templates, problems)
    codes = CodesConfig()
    if (path / CODES_FILE).exists():
        loaded_codes = _load_file(path / CODES_FILE, CodesConfig, problems, raw)
        if isinstance(loaded_codes, CodesConfig):
            codes = loaded_codes
    _check_approval(path / APPROVAL_FILE, approval, problems)
    if problems:
        raise PlaybookError(_named(problems, raw))
    return Playbook(
        path=path,
        routing=routing,
        sla=sla,
        templates=templates.templates,
        escalation=escalation,
        crisis=crisis,
        calendars=calendars,
        drills=drills,
        codes=codes,
        approval=approval,
        signature=templates.signature,
    )


# --- cross-file checks ----------------------------------------------------------------------


def _duplicates(ids: Sequence[str]) -> Iterator[tuple[int, str, int]]:
    """(index, id, index of the first occurrence) for every repeated id."""
    first: dict[str, int] = {}
    for i, item in enumerate(ids):
        if item in first:
            yield i, item, first[item]
        else:
            first[item] = i


def _check_routing(
    file: Path, routing: RoutingConfig, sla: SlaConfig, problems: list[Problem]
) -> None:
    for i, rule_id, first in _duplicates([r.id for r in routing.rules]):
        problems.append(
            (file, f"rules[{i}].id", f"duplicate rule id {rule_id!r} (also rules[{first}])")
        )
    for i, rule in enumerate(routing.rules):
        if rule.match.is_empty:
            problems.append(
                (
                    file,
                    f"rules[{i}].match",
                    "a rule needs at least one criterion (it would catch everything)",
                )
            )
        if rule.sla_policy and rule.sla_policy not in sla.policies:
            message = unknown_name("SLA policy", rule.sla_policy, sla.policies) + " in sla.yaml"
            problems.append((file, f"rules[{i}].sla_policy", message))
    if routing.default.sla_policy and routing.default.sla_policy not in sla.policies:
        problems.append(
            (
                file,
                "default.sla_policy",
                unknown_name("SLA policy", routing.default.sla_policy, sla.policies)
                + " in sla.yaml",
            )
        )


def _check_sla(
    file: Path, sla: SlaConfig, escalation: EscalationConfig, problems: list[Problem]
) -> None:
    calendars = {*sla.calendars, ALWAYS_OPEN}
    if ALWAYS_OPEN in sla.calendars:
        problems.append(
            (
                file,
                f"calendars.{ALWAYS_OPEN}",
                f"{ALWAYS_OPEN!r} is built in and cannot be redefined",
            )
        )
    for name, policy in sla.policies.items():
        at = f"policies.{name}"
        if policy.calendar not in calendars:
            message = unknown_name("calendar", policy.calendar, calendars)
            problems.append((file, f"{at}.calendar", message))
        if policy.escalation_chain and policy.escalation_chain not in escalation.chains:
            problems.append(
                (
                    file,
                    f"{at}.escalation_chain",
                    unknown_name("escalation chain", policy.escalation_chain, escalation.chains)
                    + " in escalation.yaml",
                )
            )
        if policy.reaction is not None and policy.reaction > policy.first_touch:
            problems.append((file, f"{at}.reaction", "is longer than first_touch"))
        if policy.answer < policy.first_touch:
            problems.append((file, f"{at}.answer", "is shorter than first_touch"))
        if policy.resolution < policy.answer:
            problems.append((file, f"{at}.resolution", "is shorter than answer"))
    named = [(f"by_priority.{p.value}", sla.by_priority.get(p)) for p in Priority]
    named += [
        (f"by_department.{dept}.{priority.value}", name)
        for dept, overrides in sla.by_department.items()
        for priority, name in overrides.items()
    ]
    for field, name in named:
        if name not in sla.policies:
            problems.append((file, field, unknown_name("SLA policy", name, sla.policies)))


_REPLY_GLOBALS = frozenset(REPLY_ENV.globals)


def _check_templates(file: Path, config: TemplatesConfig, problems: list[Problem]) -> None:
    for i, template_id, first in _duplicates([t.id for t in config.templates]):
        problems.append(
            (
                file,
                f"templates[{i}].id",
                f"duplicate template id {template_id!r} (also templates[{first}])",
            )
        )
    for i, template in enumerate(config.templates):
        for locale in template.text.given():
            field = f"templates[{i}].text.{locale}"
            try:
                ast = REPLY_ENV.parse(template.text.get(locale))
            except TemplateSyntaxError as exc:
                problems.append(
                    (file, field, f"template syntax error at line {exc.lineno}: {exc.message}")
                )
                continue
            used = meta.find_undeclared_variables(ast)
            unknown = used - REPLY_VARIABLES.keys() - _REPLY_GLOBALS
            if unknown:
                problems.append(
                    (
                        file,
                        field,
                        f"unknown variable(s) {', '.join(sorted(unknown))}; "
                        f"available: {', '.join(REPLY_VARIABLES)}",
                    )
                )
            quoted = used & CITIZEN_VARIABLES
            if template.pre_approved and quoted:
                problems.append(
                    (
                        file,
                        field,
                        f"a pre_approved template may not use {', '.join(sorted(quoted))}: "
                        "the citizen wrote it, and it would be published with no review; "
                        "remove the variable, or pre_approved (then a second person reviews "
                        "every answer made from it)",
                    )
                )


def _check_escalation(file: Path, config: EscalationConfig, problems: list[Problem]) -> None:
    for name, chain in config.chains.items():
        for i, step in enumerate(chain.steps):
            if step.level != i + 1:
                problems.append(
                    (
                        file,
                        f"chains.{name}.steps[{i}].level",
                        f"expected level {i + 1}: levels go 1, 2, 3… in step order",
                    )
                )


def _check_crisis(
    file: Path, crisis: CrisisConfig, templates: TemplatesConfig, problems: list[Problem]
) -> None:
    for i, threshold_id, first in _duplicates([t.id for t in crisis.thresholds]):
        problems.append(
            (
                file,
                f"thresholds[{i}].id",
                f"duplicate threshold id {threshold_id!r} (also thresholds[{first}])",
            )
        )
    by_id = {t.id: t for t in templates.templates}
    template = by_id.get(crisis.holding_statement_template)
    if template is None:
        problems.append(
            (
                file,
                "holding_statement_template",
                unknown_name("template", crisis.holding_statement_template, by_id)
                + " in templates.yaml",
            )
        )
    elif template.kind is not TemplateKind.HOLDING_STATEMENT:
        problems.append(
            (
                file,
                "holding_statement_template",
                f"template {template.id!r} is of kind {template.kind.value!r}, "
                "expected 'holding_statement'",
            )
        )


def _check_approval(file: Path, config: ApprovalConfig, problems: list[Problem]) -> None:
    for i, rule_id, first in _duplicates([r.id for r in config.rules]):
        problems.append(
            (file, f"rules[{i}].id", f"duplicate rule id {rule_id!r} (also rules[{first}])")
        )
    for i, rule in enumerate(config.rules):
        if rule.match.is_empty:
            problems.append(
                (
                    file,
                    f"rules[{i}].match",
                    "a rule needs at least one of departments, priorities, codes "
                    "(it would catch everything: say it in `default`)",
                )
            )
