"""Forms of the console's pages (read-only filters; nothing here writes)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.businesses.registry import business_choices
from apps.recordings.models import RecordingState
from apps.recordings.selectors import RecordingSearch
from apps.visits.models import VisitOutcome

# What <input type="datetime-local"> sends, read in the current time zone (Asia/Shanghai by default).
_LOCAL_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def _any(choices: Any) -> list[tuple[str, Any]]:
    return [("", _("Any")), *choices]


class RecordingSearchForm(forms.Form):
    agent = forms.CharField(label=_("Agent (employee number)"), required=False, max_length=20)
    customer = forms.CharField(label=_("Customer number"), required=False, max_length=20)
    business = forms.ChoiceField(label=_("Business"), required=False, choices=())
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=_any(VisitOutcome.choices))
    state = forms.ChoiceField(label=_("Post-processing"), required=False, choices=_any(RecordingState.choices))
    call_from = forms.DateTimeField(
        label=_("Call from"),
        required=False,
        input_formats=_LOCAL_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    call_until = forms.DateTimeField(
        label=_("Call until"),
        required=False,
        input_formats=_LOCAL_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Businesses are configuration (apps.businesses.registry): read them per form, not at import.
        business_field = self.fields["business"]
        assert isinstance(business_field, forms.ChoiceField)
        business_field.choices = _any(business_choices())

    def search(self) -> RecordingSearch:
        """The selector's filters: the fields that are valid (the page shows the errors of the others)."""
        if not self.is_bound:
            return RecordingSearch()
        self.is_valid()
        data = self.cleaned_data
        return RecordingSearch(
            agent=data.get("agent") or "",
            customer=data.get("customer") or "",
            business=data.get("business") or "",
            outcome=data.get("outcome") or "",
            state=data.get("state") or "",
            call_from=data.get("call_from"),
            call_until=data.get("call_until"),
        )
