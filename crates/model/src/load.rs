//! Entry points: load a project file or a bare OpenAPI/Swagger definition.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostic, Severity};
use crate::openapi::{self, ImportOptions, Imported, MAX_DEFINITION_BYTES};
use crate::rest::{RestApiDefinition, Stage};
use crate::source::{self, join};
use crate::walk::Ctx;
use crate::{project, validate, Project, ProjectApi, DEFAULT_ACCOUNT_ID, DEFAULT_REGION};

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--stage NAME`: the stage of a bare definition; for a project file, serve only the stages
    /// with this name.
    pub stage: Option<String>,
}

/// Everything that stopped a load: every error found, plus the warnings.
#[derive(Debug, thiserror::Error)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl LoadError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

/// Imports one OpenAPI/Swagger document (already read), with the default region and account.
/// `Ok` carries the warnings; `Err` carries every error found and the warnings.
pub fn import_openapi(
    file: &Path,
    text: &str,
) -> Result<(RestApiDefinition, Vec<Diagnostic>), Vec<Diagnostic>> {
    openapi::import(file, text, &ImportOptions::default()).map(|i| (i.definition, i.warnings))
}

pub(crate) fn file_error(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_path_buf(),
        line: None,
        column: None,
        pointer: String::new(),
        message,
    }
}

/// Reads a definition or project file, enforcing the 6 MB import limit and UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.is_dir() {
        return Err(format!("{} is a directory, not a file", path.display()));
    }
    if meta.len() > MAX_DEFINITION_BYTES {
        return Err(format!(
            "{} is {} bytes; API Gateway imports definitions of at most 6 MB ({MAX_DEFINITION_BYTES} bytes)",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{} is not valid UTF-8 (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Loads FILE: either a project file (top-level `apis:` or `websocketApis:` key) or a bare
/// OpenAPI/Swagger definition. `Ok` carries warnings inside `Project::warnings`; `Err` carries every error found
/// (and the warnings), never just the first.
pub fn load_project(path: &Path, opts: &LoadOptions) -> Result<Project, LoadError> {
    let fail = |d: Diagnostic| LoadError {
        diagnostics: vec![d],
    };
    let text = read_text(path).map_err(|m| fail(file_error(path, m)))?;
    let doc = source::parse(path, &text).map_err(|diagnostics| LoadError { diagnostics })?;
    let is_project = doc
        .value
        .as_object()
        .is_some_and(|m| m.contains_key("apis") || m.contains_key("websocketApis"));
    let mut diags = if is_project {
        project::load(path, doc, opts)
    } else {
        load_bare(path, doc, opts)
    }?;
    // Ok path: only warnings remain.
    openapi::sort_diagnostics(&mut diags.warnings);
    Ok(diags)
}

fn load_bare(path: &Path, doc: source::Document, opts: &LoadOptions) -> Result<Project, LoadError> {
    let mut diags = Vec::new();
    let imported = match openapi::import_document(path, doc, &ImportOptions::default()) {
        Ok(i) => i,
        Err(d) => return Err(LoadError { diagnostics: d }),
    };
    let stage_name = default_stage_name(path, &imported, opts, &mut diags);
    let stage = Stage {
        stage_name,
        ..Stage::default()
    };
    let api = finish_api(path, imported, vec![stage], &mut diags);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        openapi::sort_diagnostics(&mut diags);
        return Err(LoadError { diagnostics: diags });
    }
    Ok(Project {
        source: path.to_path_buf(),
        listen: None,
        region: DEFAULT_REGION.to_string(),
        account_id: DEFAULT_ACCOUNT_ID.to_string(),
        apis: vec![api],
        websocket_apis: Vec::new(),
        warnings: diags,
        functions: Vec::new(),
        aws: Default::default(),
        access: Default::default(),
    })
}

/// `--stage`, else the definition's base path (first segment), else `dev`.
pub(crate) fn default_stage_name(
    file: &Path,
    imported: &Imported,
    opts: &LoadOptions,
    diags: &mut Vec<Diagnostic>,
) -> String {
    if let Some(s) = &opts.stage {
        if let Err(e) = validate::stage_name(s) {
            diags.push(file_error(file, format!("--stage: {e}")));
        }
        return s.clone();
    }
    if let Some(bp) = &imported.base_path {
        let first = bp.split('/').next().unwrap_or("");
        if validate::stage_name(first).is_ok() {
            return first.to_string();
        }
        let mut cx = Ctx::new(file, &imported.document.map);
        let ptr = if imported.document.value.get("basePath").is_some() {
            "/basePath"
        } else {
            "/servers"
        };
        cx.warn(
            ptr,
            format!("base path {bp:?} is not a valid stage name; using stage \"dev\""),
        );
        diags.extend(cx.diags);
    }
    "dev".to_string()
}

/// Deployment checks (what CreateDeployment rejects), then packs the API.
pub(crate) fn finish_api(
    file: &Path,
    imported: Imported,
    stages: Vec<Stage>,
    diags: &mut Vec<Diagnostic>,
) -> ProjectApi {
    let mut cx = Ctx::new(file, &imported.document.map);
    let mut any_method = false;
    for r in &imported.definition.resources {
        for (m, method) in &r.resource_methods {
            any_method = true;
            if method.method_integration.is_none() {
                let ptr = imported
                    .method_pointers
                    .get(&(r.path.clone(), m.clone()))
                    .cloned()
                    .unwrap_or_default();
                cx.error(
                    &ptr,
                    format!("No integration defined for method {m} {}: add x-amazon-apigateway-integration", r.path),
                );
            }
        }
    }
    if !any_method {
        cx.error("/paths", "The REST API doesn't contain any methods");
    }
    diags.extend(imported.warnings);
    diags.extend(cx.diags);
    ProjectApi {
        source: file.to_path_buf(),
        definition: imported.definition,
        stages,
        source_map: imported.document.map,
    }
}

impl ProjectApi {
    /// A diagnostic about this API's definition file, positioned from a JSON pointer (e.g. the
    /// gateway's own compile errors).
    pub fn diagnostic(
        &self,
        severity: Severity,
        pointer: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let pos = self.source_map.position(pointer);
        Diagnostic {
            severity,
            file: self.source.clone(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            pointer: pointer.to_string(),
            message: message.into(),
        }
    }

    /// The JSON pointer of a security scheme's `x-amazon-apigateway-authorizer`, where the
    /// definition has it: `components/securitySchemes` (OpenAPI 3) or `securityDefinitions`
    /// (Swagger 2).
    pub fn authorizer_pointer(&self, scheme: &str) -> String {
        let name = scheme.replace('~', "~0").replace('/', "~1");
        let v3 = format!("/components/securitySchemes/{name}");
        let base = if self.source_map.contains(&v3) {
            v3
        } else {
            format!("/securityDefinitions/{name}")
        };
        format!("{base}/x-amazon-apigateway-authorizer")
    }

    /// The JSON pointer of a method's operation in the definition
    /// (`/paths/~1pets/get`, `.../x-amazon-apigateway-any-method` for `ANY`).
    pub fn method_pointer(resource_path: &str, http_method: &str) -> String {
        let op = if http_method == "ANY" {
            "x-amazon-apigateway-any-method".to_string()
        } else {
            http_method.to_ascii_lowercase()
        };
        join(&join("/paths", resource_path), &op)
    }
}

/// Resolves `relative` against the directory of `base_file`.
pub(crate) fn relative_to(base_file: &Path, relative: &str) -> PathBuf {
    let p = Path::new(relative);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_file
            .parent()
            .map(|d| d.join(p))
            .unwrap_or_else(|| p.to_path_buf())
    }
}
