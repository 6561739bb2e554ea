/** @module The workflow runs' errors (at `POST /workflows/{id}/runs`, before a task is made). */
import { validationError, type FieldProblem } from '../../lib/errors.ts'

export const uiFormatWorkflow = () =>
  validationError("The workflow is in ComfyUI's UI format (nodes and links), which cannot be run: export it from ComfyUI with 'Save (API Format)' and upload that", [
    { path: 'workflow_data', message: "is in the UI format; an API-format workflow (from 'Save (API Format)') is needed" },
  ])

export const notApiFormat = (problem: FieldProblem) => validationError('The workflow is not an API-format ComfyUI workflow', [problem])

export const workflowWithoutService = () => validationError('The workflow has no service to run on: set its service_id first', [{ path: 'service_id', message: 'the workflow has no service' }])

export const invalidRunInputs = (errors: FieldProblem[]) => validationError('The inputs do not fit the workflow', errors)
