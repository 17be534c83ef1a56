"""GLSL sources. One surface shader and one sky shader, each compiled in three
variants by a define: GBUFFER (LR: colour + the full G-buffer), COLOR (HR
reference samples) and MOTION_DEPTH (HR motion and depth at pixel centres). The
surface shader has a fourth, DEPTH_ONLY: no outputs, only its alpha test (the
depth pre-pass of the HR samples, ``Scene.depth_prepass``).

Motion is computed per fragment from perspective-correctly interpolated clip
positions of the current and previous (unjittered) transforms, which is exact
for planar triangles: see datagen.conventions for the sign and units.
"""

from __future__ import annotations

VARIANTS = ("GBUFFER", "COLOR", "MOTION_DEPTH")

HEADER = "#version 330 core\n"
FRAGMENT_EXTENSIONS = "#extension GL_ARB_derivative_control : enable\n"
"""dFdxFine/dFdyFine where the driver has them (Mesa and NVIDIA do): an unsupported
``enable`` is only a warning, and the shaders fall back to dFdx/dFdy."""

COMMON = """
const float PI = 3.14159265358979;
uniform vec2 u_size;  // this buffer's size in pixels

// Pixel position (x right, y down) of a clip-space position.
vec2 clip_to_pixel(vec4 clip) {
    vec2 ndc = clip.xy / clip.w;
    return vec2((ndc.x * 0.5 + 0.5) * u_size.x, (0.5 - ndc.y * 0.5) * u_size.y);
}

uniform vec3 u_sky_zenith;
uniform vec3 u_sky_horizon;
uniform vec3 u_sky_ground;
uniform vec3 u_sun_dir;       // towards the sun, unit
uniform vec3 u_sun_radiance;  // colour * irradiance
uniform float u_sun_disc;

// the sun's disc (~0.53 degrees, soft limb) as seen along a direction
float sun_disc(vec3 dir) { return smoothstep(0.99995, 0.999975, dot(dir, u_sun_dir)); }

vec3 sky_radiance(vec3 dir, bool with_sun) {
    float up = dir.y;
    vec3 c = up >= 0.0
        ? mix(u_sky_horizon, u_sky_zenith, sqrt(clamp(up, 0.0, 1.0)))
        : mix(u_sky_horizon, u_sky_ground, clamp(-up * 8.0, 0.0, 1.0));
    if (with_sun) c += u_sun_radiance * u_sun_disc * sun_disc(dir);
    return c;
}
"""

OUTPUTS = """
#if defined(GBUFFER)
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec2 out_motion;
layout(location = 2) out float out_depth;
layout(location = 3) out vec4 out_normal;
layout(location = 4) out vec4 out_albedo;
layout(location = 5) out vec2 out_material;
layout(location = 6) out uint out_object_id;
#elif defined(COLOR)
layout(location = 0) out vec4 out_color;
#elif defined(MOTION_DEPTH)
layout(location = 0) out vec2 out_motion;
layout(location = 1) out float out_depth;
#endif
"""
"""The render targets of each variant, shared by the surface and sky shaders:
GBUFFER is the LR G-buffer's 7 targets, COLOR one HR sample, MOTION_DEPTH the HR
motion and depth (the renderer's framebuffers attach them in this order);
DEPTH_ONLY (surfaces only) none."""

SURFACE_VS = """
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;

uniform mat4 u_model;
uniform mat3 u_normal_mat;
uniform mat4 u_mvp_raster;  // jittered (LR) or sample-offset (HR) projection
uniform mat4 u_mvp_cur;     // unjittered, current transforms
uniform mat4 u_mvp_prev;    // unjittered, previous camera and object transforms
uniform vec4 u_mv_row2;     // third row of view @ model: eye-space z
uniform mat4 u_shadow_mvp;  // sun's orthographic view-projection @ model, to [0, 1]^3

out vec3 v_world;
out vec3 v_normal;
out vec2 v_uv;
out vec4 v_clip_cur;
out vec4 v_clip_prev;
out float v_depth;
out vec3 v_shadow;  // affine in the vertex (orthographic sun): interpolates exactly

void main() {
    vec4 p = vec4(in_pos, 1.0);
    v_world = (u_model * p).xyz;
    v_normal = u_normal_mat * in_normal;
    v_uv = in_uv;
    v_clip_cur = u_mvp_cur * p;
    v_clip_prev = u_mvp_prev * p;
    v_depth = -dot(u_mv_row2, p);
    v_shadow = (u_shadow_mvp * p).xyz;
    gl_Position = u_mvp_raster * p;
}
"""

SURFACE_FS = """
in vec3 v_world;
in vec3 v_normal;
in vec2 v_uv;
in vec4 v_clip_cur;
in vec4 v_clip_prev;
in float v_depth;
in vec3 v_shadow;

uniform sampler2D u_base_tex;
uniform sampler2D u_mr_tex;
uniform sampler2D u_normal_tex;
uniform sampler2D u_emissive_tex;
uniform sampler2D u_occlusion_tex;
uniform sampler2DShadow u_shadow_map;
uniform vec4 u_base_color;
uniform float u_metallic;
uniform float u_roughness;
uniform vec3 u_emissive;
uniform float u_alpha_cutoff;
uniform float u_mip_bias;
uniform uint u_object_id;
uniform vec3 u_cam_pos;

""" + OUTPUTS + """

vec2 g_duv_dx, g_duv_dy;  // d(uv)/d(pixel), set first thing in main()

#if defined(LR_PROBES) && LR_PROBES > 1
// Anisotropic filtering in the shader, the GL spec's model (EXT_texture_filter_
// anisotropic): the footprint's axes in texels are the uv derivatives along x and y;
// N = min(ceil(major / minor), LR_PROBES) trilinear probes at LOD log2(major / N)
// + bias, spaced along the major axis at i / (N + 1) - 1/2 of a pixel and averaged.
// The probe count bounds the cost (the driver's own anisotropic filter has no such
// bound on llvmpipe), and explicit LODs make every driver compute the same image.
vec4 sample_tex(sampler2D s, vec2 uv) {
    vec2 size = vec2(textureSize(s, 0));
    vec2 ax = g_duv_dx * size, ay = g_duv_dy * size;
    float lx = dot(ax, ax), ly = dot(ay, ay);
    float major = sqrt(max(lx, ly)), minor = sqrt(min(lx, ly));
    float n = clamp(ceil(major / max(minor, 1e-20)), 1.0, float(LR_PROBES));
    float lod = log2(max(major / n, 1e-20)) + u_mip_bias;
    vec2 step = (lx >= ly ? g_duv_dx : g_duv_dy) / (n + 1.0);
    vec2 p = uv - 0.5 * (lx >= ly ? g_duv_dx : g_duv_dy);
    vec4 sum = vec4(0.0);
    for (int i = 1; i <= int(n); ++i) sum += textureLod(s, p + float(i) * step, lod);
    return sum / n;
}
#else
vec4 sample_tex(sampler2D s, vec2 uv) { return texture(s, uv, u_mip_bias); }
#endif

vec4 base_color() {
    vec4 c = u_base_color;
#ifdef HAS_BASE_TEX
    c *= sample_tex(u_base_tex, v_uv);
#endif
    return c;
}

// Normal mapping without stored tangents: a cotangent frame from screen-space
// derivatives (Schueler 2006).
vec3 perturb(vec3 n, vec3 map) {
    vec3 dp1 = dFdx(v_world), dp2 = dFdy(v_world);
    vec2 duv1 = g_duv_dx, duv2 = g_duv_dy;
    vec3 dp2perp = cross(dp2, n), dp1perp = cross(n, dp1);
    vec3 t = dp2perp * duv1.x + dp1perp * duv2.x;
    vec3 b = dp2perp * duv1.y + dp1perp * duv2.y;
    float invmax = inversesqrt(max(max(dot(t, t), dot(b, b)), 1e-20));
    // glTF's v runs down the image, so the bitangent flips
    return normalize(mat3(t * invmax, -b * invmax, n) * map);
}

// 2x2 PCF from the hardware compare; the sun's box holds all geometry
// (Scene.bounds), so no bounds test is needed.
float shadow() { return texture(u_shadow_map, vec3(v_shadow.xy, v_shadow.z - 0.0015)); }

float pow5(float x) {
    float x2 = x * x;
    return x2 * x2 * x;
}

vec3 shade(vec3 base, float metallic, float rough, vec3 n, float occlusion) {
    vec3 v = normalize(u_cam_pos - v_world);
    vec3 l = u_sun_dir;
    float ndl = max(dot(n, l), 0.0);
    float ndv = max(dot(n, v), 1e-4);
    vec3 h = normalize(l + v);
    float ndh = max(dot(n, h), 0.0);
    float a = max(rough * rough, 2e-3);
    float a2 = a * a;
    float d = ndh * ndh * (a2 - 1.0) + 1.0;
    float D = a2 / (PI * d * d);
    float k = (rough + 1.0) * (rough + 1.0) / 8.0;
    float G = ndv / (ndv * (1.0 - k) + k) * ndl / (ndl * (1.0 - k) + k);
    vec3 F0 = mix(vec3(0.04), base, metallic);
    vec3 F = F0 + (1.0 - F0) * pow5(1.0 - max(dot(h, v), 0.0));
    vec3 spec = D * G * F / max(4.0 * ndv * ndl, 1e-4);
    vec3 kd = (1.0 - F) * (1.0 - metallic);
    float vis = ndl > 0.0 ? shadow() : 0.0;
    vec3 direct = (kd * base / PI + spec) * u_sun_radiance * ndl * vis;
    // sky ambient: hemisphere irradiance for diffuse, a roughness-blurred sky
    // lookup for specular
    vec3 sky_mid = mix(u_sky_horizon, u_sky_zenith, 0.5);
    vec3 irradiance = mix(u_sky_ground, sky_mid, n.y * 0.5 + 0.5);
    vec3 r = reflect(-v, n);
    vec3 env = mix(sky_radiance(r, false), sky_mid, rough);
    vec3 Fa = F0 + (max(vec3(1.0 - rough), F0) - F0) * pow5(1.0 - ndv);
    vec3 ambient = ((1.0 - Fa) * (1.0 - metallic) * base * irradiance + Fa * env) * occlusion;
    return direct + ambient;
}

void main() {
#ifdef GL_ARB_derivative_control  // fine: defined per pixel, the same on every driver
    g_duv_dx = dFdxFine(v_uv);
    g_duv_dy = dFdyFine(v_uv);
#else
    g_duv_dx = dFdx(v_uv);
    g_duv_dy = dFdy(v_uv);
#endif
#if defined(DEPTH_ONLY)
#ifdef ALPHA_MASK
    if (base_color().a < u_alpha_cutoff) discard;  // the same test as the shading pass's
#endif
#elif defined(MOTION_DEPTH)
#ifdef ALPHA_MASK
    if (base_color().a < u_alpha_cutoff) discard;
#endif
    out_motion = clip_to_pixel(v_clip_prev) - clip_to_pixel(v_clip_cur);
    out_depth = v_depth;
#else
    vec4 base = base_color();
#ifdef ALPHA_MASK
    if (base.a < u_alpha_cutoff) discard;
#endif
    float metallic = u_metallic, rough = u_roughness;
#ifdef HAS_MR_TEX
    vec4 mr = sample_tex(u_mr_tex, v_uv);
    rough *= mr.g;
    metallic *= mr.b;
#endif
    vec3 n = normalize(v_normal);
#ifdef DOUBLE_SIDED
    if (!gl_FrontFacing) n = -n;
#endif
#ifdef HAS_NORMAL_TEX
    n = perturb(n, sample_tex(u_normal_tex, v_uv).xyz * 2.0 - 1.0);
#endif
    float occlusion = 1.0;
#ifdef HAS_OCCLUSION_TEX
    occlusion = sample_tex(u_occlusion_tex, v_uv).r;
#endif
    vec3 emissive = u_emissive;
#ifdef HAS_EMISSIVE_TEX
    emissive *= sample_tex(u_emissive_tex, v_uv).rgb;
#endif
    vec3 color = shade(base.rgb, metallic, rough, n, occlusion) + emissive;
#ifdef ALPHA_BLEND
    out_color = vec4(color, base.a);
#else
    out_color = vec4(color, 1.0);  // coverage: the sky shows only where alpha < 1
#endif
#if defined(GBUFFER)
    out_motion = clip_to_pixel(v_clip_prev) - clip_to_pixel(v_clip_cur);
    out_depth = v_depth;
    out_normal = vec4(n, 0.0);
    out_albedo = vec4(base.rgb, 1.0);
    out_material = vec2(rough, metallic);
    out_object_id = u_object_id;
#endif
#endif
}
"""

SKY_VS = """
in vec2 in_ndc;
void main() { gl_Position = vec4(in_ndc, 1.0, 1.0); }  // on the far plane
"""

SKY_FS = """
uniform mat4 u_inv_vp_raster;  // inverse of proj_raster @ view rotation
uniform mat4 u_vp_cur;         // unjittered proj @ view rotation, current
uniform mat4 u_vp_prev;        // unjittered proj @ view rotation, previous

""" + OUTPUTS + """

void main() {
    vec2 ndc = gl_FragCoord.xy / u_size * 2.0 - 1.0;
    vec4 d = u_inv_vp_raster * vec4(ndc, 1.0, 1.0);
    vec3 dir = normalize(d.xyz / d.w);
#if !defined(COLOR)
    // the sky is at infinity: only the camera's rotation moves it
    out_motion = clip_to_pixel(u_vp_prev * vec4(dir, 0.0)) - clip_to_pixel(u_vp_cur * vec4(dir, 0.0));
    out_depth = uintBitsToFloat(0x7F800000u);  // +inf
#endif
#if !defined(MOTION_DEPTH)
    out_color = vec4(sky_radiance(dir, true), 1.0);
#endif
#if defined(GBUFFER)
    out_normal = vec4(0.0);
    out_albedo = vec4(0.0);
    out_material = vec2(0.0);
    out_object_id = 0u;
#endif
}
"""

SHADOW_VS = """
in vec3 in_pos;
in vec2 in_uv;
uniform mat4 u_mvp;
out vec2 v_uv;
void main() { v_uv = in_uv; gl_Position = u_mvp * vec4(in_pos, 1.0); }
"""

SHADOW_FS = """
in vec2 v_uv;
uniform sampler2D u_base_tex;
uniform float u_alpha_cutoff;
uniform float u_alpha_factor;
void main() {
#ifdef ALPHA_MASK
    if (texture(u_base_tex, v_uv).a * u_alpha_factor < u_alpha_cutoff) discard;
#endif
}
"""

FULLSCREEN_VS = """
in vec2 in_ndc;
void main() { gl_Position = vec4(in_ndc, 0.0, 1.0); }
"""

ACCUMULATE_BATCH = 16
"""HR samples rendered into separate textures, then summed in one full-screen pass
per batch: 16 makes one pass at the default 16 spp. It needs 18 texture units in
one shader; llvmpipe and NVIDIA have 32."""


KARIS = """
// Karis's tonemap as Arm's NSS ground truth uses it: c / (1 + max(r, g, b)), and its inverse
vec3 karis(vec3 c) { c = max(c, vec3(0.0)); return c / (1.0 + max(c.r, max(c.g, c.b))); }
vec3 karis_inverse(vec3 m) { return m / max(1.0 - max(m.r, max(m.g, m.b)), 1.0 / 65504.0); }
"""


def accumulate_fs(count: int, resolve: str = "box") -> str:
    """The pass that sums ``count`` HR sample images.

    Each sample image holds premultiplied surfaces with coverage in alpha (0
    where the sky shows); the sky, box-filtered once per frame, goes behind
    them: sum(rgb + sky (1 - a)) = sum(rgb) + sky (count - sum(a)). u_base adds
    the float32 sum of the earlier batches (the last batch writes the finished
    mean, so there is no separate resolve pass).

    ``resolve="karis"`` sums each composited sample through ``karis`` instead
    and the last batch (``u_last`` 1) writes ``karis_inverse`` of the mean: one
    sample far brighter than the rest (a firefly) then adds at most u_weight
    to the tonemapped mean instead of its whole radiance / spp.

    The count is compiled in (llvmpipe pays for untaken uniform branches), and
    the images are read with texture() at texel centres through NEAREST
    filtering, which llvmpipe runs ~35% faster than texelFetch (measured:
    1080p, 8 half-float images, 33 against 51 ms).
    """
    fetch = "texture({}, uv)"
    if resolve == "karis":
        return (
            KARIS + f"uniform sampler2D u_src[{count}];\n"
            "uniform sampler2D u_sky;\nuniform sampler2D u_base;\nuniform float u_base_on;\n"
            "uniform float u_last;\nuniform float u_weight;\nout vec4 out_color;\n"
            "void main() {\n    vec2 uv = gl_FragCoord.xy / u_size;\n"
            f"    vec3 sky = {fetch.format('u_sky')}.rgb;\n    vec4 s;\n    vec3 sum = vec3(0.0);\n"
            + "".join(f"    s = {fetch.format(f'u_src[{i}]')};\n"
                      "    sum += karis(s.rgb + sky * (1.0 - s.a));\n" for i in range(count))
            + f"    vec3 base = u_base_on > 0.0 ? {fetch.format('u_base')}.rgb : vec3(0.0);\n"
            + "    vec3 mean = base + sum * u_weight;\n"
            + "    out_color = vec4(u_last > 0.0 ? karis_inverse(mean) : mean, 1.0);\n}\n"
        )
    return (
        f"uniform sampler2D u_src[{count}];\n"
        "uniform sampler2D u_sky;\nuniform sampler2D u_base;\nuniform float u_base_on;\n"
        "uniform float u_weight;\nout vec4 out_color;\n"
        "void main() {\n    vec2 uv = gl_FragCoord.xy / u_size;\n"
        + "".join(f"    {'vec4 s =' if i == 0 else 's +='} {fetch.format(f'u_src[{i}]')};\n"
                  for i in range(count))
        + f"    vec3 sum = s.rgb + {fetch.format('u_sky')}.rgb * ({float(count)} - s.a);\n"
        + f"    vec3 base = u_base_on > 0.0 ? {fetch.format('u_base')}.rgb : vec3(0.0);\n"
        + "    out_color = vec4(base + sum * u_weight, 1.0);\n}\n"
    )


SKY_SAMPLES_MAX = 16
"""The sky gradient is smooth (its box filter is the centre value to second
order); only the sun's limb is supersampled, with up to 16 stratified samples."""

SKY_AVERAGE_FS = f"""
uniform mat4 u_inv_vp;  // inverse of unjittered proj @ view rotation
uniform vec2 u_offsets[{SKY_SAMPLES_MAX}];
uniform int u_count;
out vec4 out_color;

vec3 pixel_dir(vec2 pos) {{
    vec4 d = u_inv_vp * vec4(pos / u_size * 2.0 - 1.0, 1.0, 1.0);
    return normalize(d.xyz / d.w);
}}

void main() {{
    vec3 centre = pixel_dir(gl_FragCoord.xy);
    vec3 color = sky_radiance(centre, false);
    // supersample only within ~0.8 degrees of the sun. A loop whose count is 0
    // elsewhere, not an if: llvmpipe runs an if's body for the whole pixel
    // block under a mask, but leaves a loop once no pixel of the block is in it
    // (1080p sky pass: 31.7 -> 29.9 ms, measured A/B in one process)
    int n = dot(centre, u_sun_dir) > 0.9999 ? u_count : 0;
    float disc = 0.0;
    for (int i = 0; i < n; ++i) disc += sun_disc(pixel_dir(floor(gl_FragCoord.xy) + u_offsets[i]));
    if (n > 0) color += u_sun_radiance * u_sun_disc * disc / float(n);
    out_color = vec4(color, 1.0);
}}
"""


def program_sources(vs: str, fs: str, *defines: str) -> dict[str, str]:
    """Vertex and fragment sources with ``#define``s and the common code.

    Material features are compile-time defines, not uniform branches: llvmpipe
    pays for untaken uniform branches (13 ms of a 60 ms 1080p pass, measured).
    """
    define = "".join(f"#define {d}\n" for d in defines if d)
    return {
        "vertex_shader": HEADER + define + COMMON + vs,
        "fragment_shader": HEADER + FRAGMENT_EXTENSIONS + define + COMMON + fs,
    }
