"""Template filters for the QuickBooks admin pages."""

from django import template

from integrations.admin_text import settings_links as _settings_links

register = template.Library()


@register.filter(is_safe=True)
def settings_links(text):
    """The text escaped, each settings tab it names linked to that tab."""
    return _settings_links(text)
