/**
 * @module The built-in prompts (docs/api.md §19 "Prompts"): what questions over SQL send the model,
 * each with the variables it may use. A user's own version of a prompt replaces the default for
 * that user only; the variables are the same.
 */

export const PROMPT_NAMES = ['sql_generation', 'sql_answer', 'chart', 'title'] as const
export type PromptName = (typeof PROMPT_NAMES)[number]

export const isPromptName = (name: string): name is PromptName => (PROMPT_NAMES as readonly string[]).includes(name)

export interface PromptDefinition {
  description: string
  /** the variables the template may use, each with what it holds */
  variables: Record<string, string>
  content: string
}

const SQL_GENERATION = `You are an expert data analyst who writes {{dialect}} SQL. Write one query that answers the question below from the database schema that follows.

Rules:
- Write exactly one read-only statement: a SELECT, or WITH … SELECT. Anything that changes data, the schema or the session (INSERT, UPDATE, DELETE, CREATE, SET, …) is refused.
- Use only the tables and columns in the schema, with their exact names. Quote a name the way {{dialect}} does when it has capitals, spaces or is a reserved word.
- Join on the keys the schema shows, and qualify columns with short table aliases when more than one table is used.
- For totals, averages, counts and rankings, aggregate with GROUP BY; order rankings and time series explicitly (ORDER BY).
- Return only the columns the answer needs, with clear snake_case aliases (total_revenue, order_month).
{{#row_limit}}- Unless the question asks for a single aggregate, return at most {{row_limit}} rows (LIMIT {{row_limit}}).
{{/row_limit}}{{#today}}- Today is {{today}}: use it for relative dates such as "last month" or "this year".
{{/today}}- Values in the question may differ in case or spelling from the data: match text with care (the sample values in the schema show how the data is written).
- If the schema cannot fully answer the question, write the closest useful query and start it with a SQL comment saying what is missing.

Database schema ({{dialect}}):
{{schema}}
{{#history}}

Earlier in this conversation:
{{history}}
{{/history}}

Question{{#language}} (asked in {{language}}){{/language}}: {{question}}
{{#error}}

Your previous query failed.
Query:
\`\`\`sql
{{previous_sql}}
\`\`\`
The database answered: {{error}}
Write a corrected query: keep what was right and fix what the error points at.
{{/error}}

Reply with the SQL only, in one \`\`\`sql code block, with no explanation.`

const SQL_ANSWER = `You are a data analyst explaining the result of a database query to the person who asked the question.

Question: {{question}}

The query that was run:
\`\`\`sql
{{sql}}
\`\`\`

The result (rows: {{rows_count}}{{#truncated}}; only the first rows were read{{/truncated}}):
{{result}}

Answer {{#language}}in {{language}}{{/language}}{{^language}}in the language of the question{{/language}}, from this result only:
- Start with the direct answer (the number, the name, the trend) in one or two sentences.
- Then, when it helps, add up to three short points on notable details: the largest and smallest values, changes over time, outliers.
- Use the numbers in the result, rounded sensibly, with their units. Never invent a value the result does not contain.
- If the result is empty, say that nothing matched and suggest what to check.
{{#truncated}}- Only part of the rows was read: say that the answer covers those rows.
{{/truncated}}- Do not repeat the SQL or explain how the query works unless asked.`

const CHART = `Choose the chart that best shows this query result{{#question}} for the question "{{question}}"{{/question}}.

Columns: {{columns}}
First rows:
{{sample}}

Reply with one word: bar, line, pie, scatter, number or table.
- line: values over time;
- bar: comparing up to 30 categories;
- pie: up to 8 parts of a whole (shares, counts, sums), never averages or negative values;
- scatter: the relation between two numeric columns;
- number: a single value;
- table: anything else, or when a chart would not help.`

const TITLE = `Write a title of at most six words for this conversation, in the language of the conversation. Reply with the title only, without quotes.

User: {{question}}
{{#answer}}Assistant: {{answer}}{{/answer}}`

export const PROMPTS: Record<PromptName, PromptDefinition> = {
  sql_generation: {
    description: 'Turns a question into one SQL query over the connection (and corrects it after a database error).',
    variables: {
      dialect: 'the database: PostgreSQL, MySQL (or MariaDB) or SQLite',
      schema: 'the tables and columns relevant to the question, with sample values for small sets',
      question: "the user's question",
      language: "the user's language, when known",
      today: "today's date (YYYY-MM-DD)",
      row_limit: 'the most rows a query returns',
      history: 'earlier questions and queries of the conversation, when there are any',
      previous_sql: 'on a retry: the query that failed',
      error: "on a retry: the database's error for it (empty on the first try)",
    },
    content: SQL_GENERATION,
  },
  sql_answer: {
    description: "Writes the answer to the question from the query's result, in the user's language.",
    variables: {
      question: "the user's question",
      sql: 'the query that was run',
      result: 'the rows, as a table (a bounded sample)',
      rows_count: 'how many rows the query returned',
      truncated: "'true' when only the first rows were read (empty otherwise)",
      language: "the user's language, when known",
    },
    content: SQL_ANSWER,
  },
  chart: {
    description: 'Suggests a chart type for a result; the suggestion is used only when the data can show it.',
    variables: {
      columns: 'the column names and types',
      sample: 'the first rows',
      question: "the user's question",
    },
    content: CHART,
  },
  title: {
    description: "Names a conversation after its first exchange.",
    variables: {
      question: 'the first question',
      answer: 'the first answer',
    },
    content: TITLE,
  },
}

export const variablesOf = (name: PromptName): string[] => Object.keys(PROMPTS[name].variables)
