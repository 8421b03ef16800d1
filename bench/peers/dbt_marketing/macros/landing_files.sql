{#- The landing files of `source` for the days [var('start'), var('end')], as a DuckDB list:
    one file per source and day, so a one-day run reads one file, not the whole history. -#}
{% macro landing_files(source) -%}
  {%- set start = modules.datetime.date.fromisoformat(var('start')) -%}
  {%- set end = modules.datetime.date.fromisoformat(var('end')) -%}
  {%- set files = [] -%}
  {%- for i in range((end - start).days + 1) -%}
    {%- do files.append("'" ~ var('landing') ~ "/" ~ source ~ "/" ~ (start + modules.datetime.timedelta(days=i)).isoformat() ~ ".csv'") -%}
  {%- endfor -%}
  [{{ files | join(', ') }}]
{%- endmacro %}
