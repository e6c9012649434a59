# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""Training objectives of *Teaching Diffusion Models to Ground Alpha Matte* (Xiang et al., TMLR 2025).

Every loss cites the equation of the paper it implements:

| stage (paper section)                 | loss                                   | function                              |
|---------------------------------------|----------------------------------------|---------------------------------------|
| soft grounding in semantic (3.2.1)    | L_CE, eq. (2)                          | `region_cross_entropy_loss`           |
| soft grounding in transparency (3.2.2)| L_SG, eq. (3) (Phi, eq. (4): `models.SemanticGuidanceProjector`) | `semantic_guidance_loss` |
|                                       | L_STM, eq. (5)                         | `self_attention_transparency_loss`    |
|                                       | L_CTM, eq. (6)                         | `cross_attention_transparency_loss`   |
|                                       | L_alpha_lr, eq. (7)                    | `coarse_alpha_loss`                   |
|                                       | L_R, eq. (8)                           | `transparency_confidence_loss`        |
|                                       | total, eq. (9)                         | `soft_grounding_distillation_loss`    |
| soft grounding to alpha matte (3.4)   | L1 + Laplacian (Li et al., 2022 / GFM) | `matting_decoder_loss`                |

Conventions: alphas and masks are `(B, 1, H, W)` float tensors in [0, 1]; attention maps are the averaged maps the
UNet's `capture()` returns, keyed by query grid `(h, w)`: self-attention `(B, h*w, M)` (M = h*w, or the number of
down-sampled keys), cross-attention `(B, h*w, L)`. Teacher tensors are detached: the teacher is frozen in stage 2.
"""

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F

from .data.targets import NUM_REGIONS
from .data.targets import downsample_alpha as _resize_alpha

Grid = tuple[int, int]


# ----------------------------------------------------------------------------------------------------------------
# Input checks and resampling shared by the losses
# ----------------------------------------------------------------------------------------------------------------


def _check_ndim(name: str, tensor: torch.Tensor, ndim: int, layout: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape {layout}, got {type(tensor).__name__}.")
    if tensor.ndim != ndim:
        raise ValueError(f"`{name}` must have shape {layout}, got {tuple(tensor.shape)}.")


def _check_map(name: str, tensor: torch.Tensor) -> None:
    """A single-channel map `(B, 1, H, W)`: alpha, mask or logits."""
    _check_ndim(name, tensor, 4, "(B, 1, H, W)")
    if tensor.shape[1] != 1:
        raise ValueError(f"`{name}` must have shape (B, 1, H, W) (one channel), got {tuple(tensor.shape)}.")


def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )


def _check_batch(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same batch size, got {a.shape[0]} and {b.shape[0]}."
        )


def downsample_alpha(alpha: torch.Tensor, size: Grid) -> torch.Tensor:
    """Resamples a ground-truth alpha `(B, 1, H, W)` to `size` with `data.targets.downsample_alpha` (the paper's
    bilinear down-sampling, anti-aliased like PIL's bilinear resize), the same function that builds the data
    pipeline's 1/8 alpha, so targets made here and there agree."""
    _check_map("alpha", alpha)
    size = (int(size[0]), int(size[1]))
    return alpha if tuple(alpha.shape[-2:]) == size else _resize_alpha(alpha, size)


def resize_known_mask(known_mask: torch.Tensor, size: Grid) -> torch.Tensor:
    """Resizes the binary known-region mask M `(B, 1, H, W)` (1 = foreground or background) to `size`.

    A cell of a coarser grid counts as known only if every pixel it covers is known, so that L_SG never supervises
    a cell that contains transparency (eq. 3: "M ensures that semantic supervision does not interfere with the
    exploration of transparency details"). Finer grids copy the nearest cell.
    """
    _check_map("known_mask", known_mask)
    size = tuple(int(s) for s in size)
    if tuple(known_mask.shape[-2:]) == size:
        return known_mask
    # min-pooling of M == 1 - max-pooling of the transparent region 1 - M.
    return 1.0 - F.adaptive_max_pool2d(1.0 - known_mask, size)


# ----------------------------------------------------------------------------------------------------------------
# Stage 1: soft grounding in semantic (Sec. 3.2.1)
# ----------------------------------------------------------------------------------------------------------------


def region_cross_entropy_loss(region_logits: torch.Tensor, region_target: torch.Tensor) -> torch.Tensor:
    """L_CE of eq. (2): per-pixel cross-entropy over the 3 regions (foreground, background, transparent), averaged
    over pixels and batch.

    Args:
        region_logits: `(B, 3, h, w)` logits of the teacher's region head (softmax gives p_I).
        region_target: s_GT at the same grid, either class indices `(B, h, w)` or per-class values `(B, 3, h, w)`
            (one-hot, or soft labels), in the class order of `data.targets` (`REGION_*`), which must also be the
            order of the head's channels.
    """
    _check_ndim("region_logits", region_logits, 4, f"(B, {NUM_REGIONS}, h, w)")
    if region_logits.shape[1] != NUM_REGIONS:
        raise ValueError(
            f"`region_logits` must have {NUM_REGIONS} channels (one per region), "
            f"got shape {tuple(region_logits.shape)}."
        )
    if region_target.ndim == 3 and not region_target.is_floating_point():
        expected = (region_logits.shape[0], *region_logits.shape[2:])
        if tuple(region_target.shape) != expected:
            raise ValueError(
                f"`region_target` (class indices) must have shape {expected}, got {tuple(region_target.shape)}."
            )
        return F.cross_entropy(region_logits, region_target.long())
    if region_target.ndim == 4 and region_target.is_floating_point():
        _check_same_shape("region_logits", region_logits, "region_target", region_target)
        return F.cross_entropy(region_logits, region_target.to(region_logits.dtype))
    raise ValueError(
        "`region_target` must be integer class indices (B, h, w) or float per-class values (B, 3, h, w), got dtype "
        f"{region_target.dtype} and shape {tuple(region_target.shape)}."
    )


# ----------------------------------------------------------------------------------------------------------------
# Stage 2: soft grounding in transparency (Sec. 3.2.2)
# ----------------------------------------------------------------------------------------------------------------


def semantic_guidance_loss(
    teacher_features: Mapping[str, torch.Tensor],
    student_features: Mapping[str, torch.Tensor],
    known_mask: torch.Tensor,
    layer_pairs: Optional[Mapping[str, str]] = None,
) -> torch.Tensor:
    """L_SG of eq. (3): `sum_l ||M * F_T^l - M * Phi(F_S^l)||^2`, each layer with mean reduction.

    The appendix (6.2) states L_SG uses mean reduction ("L_SG is larger under mean reduction", hence lambda_SG = 0.5):
    each layer's squared error is averaged over batch, channels and pixels (masked-out pixels count as zeros), and
    the layers are summed as in eq. (3).

    Args:
        teacher_features: `{name: (B, C_T, h, w)}` intermediate features of the teacher (detached here).
        student_features: `{name: (B, C_T, h, w)}` student features already projected into the teacher's space by
            Phi (`SemanticGuidanceProjector`, eq. 4), keyed by the student's layer names.
        known_mask: M, `(B, 1, H, W)`, 1 on foreground and background; resized to each layer's grid with
            `resize_known_mask`.
        layer_pairs: `{student layer: teacher layer}` (the projector's `layer_pairs`); default: the same names.
    """
    _check_map("known_mask", known_mask)
    layer_pairs = dict(layer_pairs or {name: name for name in student_features})
    projected = student_features
    if not layer_pairs:
        raise ValueError("`student_features` is empty: L_SG needs at least one distilled layer.")
    missing = [name for name in layer_pairs.values() if name not in teacher_features]
    if missing:
        raise ValueError(f"`teacher_features` is missing {missing}; got {list(teacher_features)}.")
    missing = [name for name in layer_pairs if name not in student_features]
    if missing:
        raise ValueError(f"`student_features` is missing {missing}; got {list(student_features)}.")

    loss = known_mask.new_zeros(())
    for student_name, teacher_name in layer_pairs.items():
        teacher, student = (
            teacher_features[teacher_name].detach(),
            projected[student_name],
        )
        _check_ndim(f"teacher_features[{teacher_name!r}]", teacher, 4, "(B, C, h, w)")
        if teacher.shape != student.shape:
            raise ValueError(
                f"Student layer {student_name!r} -> teacher layer {teacher_name!r}: the (projected) student feature "
                f"has shape {tuple(student.shape)} but the teacher feature has {tuple(teacher.shape)}; check the "
                "projector's channels and the layers' resolutions."
            )
        mask = resize_known_mask(known_mask, teacher.shape[-2:]).to(student.dtype)
        loss = loss + F.mse_loss(mask * student, mask * teacher)
    return loss


def _key_grid(query_grid: Grid, num_keys: int, given: Optional[Grid], name: str) -> Grid:
    """The grid of the keys of a self-attention map: given, the query grid, or the k x k down-sampled one."""
    h, w = query_grid
    if given is not None:
        grid = (int(given[0]), int(given[1]))
        if grid[0] * grid[1] != num_keys:
            raise ValueError(f"{name}: key grid {grid} has {grid[0] * grid[1]} cells but the map has {num_keys} keys.")
        return grid
    if num_keys == h * w:
        return (h, w)
    k = round((h * w / num_keys) ** 0.5)
    if k > 1 and (h // k) * (w // k) == num_keys:
        return (h // k, w // k)
    raise ValueError(
        f"{name}: cannot infer the key grid of a map with {num_keys} keys on the query grid {query_grid}; "
        "pass the key grids (the UNet capture's `self_attention_kv_size`)."
    )


def _propagate_alpha(attention: torch.Tensor, alpha: torch.Tensor, key_grid: Grid) -> torch.Tensor:
    """`A (x) alpha` of eq. (5): alpha resampled to the key grid, then multiplied by the `(B, n, m)` map."""
    keys = downsample_alpha(alpha, key_grid).flatten(1).unsqueeze(-1)  # (B, m, 1)
    return torch.bmm(attention, keys.to(attention.dtype))  # (B, n, 1)


def self_attention_transparency_loss(
    teacher_self_attention: Mapping[Grid, torch.Tensor],
    student_self_attention: Mapping[Grid, torch.Tensor],
    alpha_gt: torch.Tensor,
    teacher_kv_sizes: Optional[Mapping[Grid, Grid]] = None,
    student_kv_sizes: Optional[Mapping[Grid, Grid]] = None,
) -> torch.Tensor:
    """L_STM of eq. (5): `||A_SA^T (x) alpha_GT - A_SA^S (x) alpha_GT||^2`, mean over resolutions.

    At each query resolution the ground-truth alpha is bilinearly down-sampled to the *key* grid of each model and
    propagated through that model's averaged self-attention map: the teacher's `(B, n, n)` map takes alpha on the
    full `h x w` grid, the student's down-sampled-K/V map `(B, n, n/j)` (Sec. 3.3) takes alpha on its `h/k x w/k`
    key grid. Both give `(B, n, 1)` on the same query grid, compared with the mean squared error. Resolutions where
    the student has no self-attention (removed layers, pruned mid block) are skipped; the loss is the mean over the
    remaining ones ("the mean of the losses across all resolutions", Sec. 3.2.2).

    Args:
        teacher_self_attention: `{(h, w): (B, h*w, M_T)}` maps of the teacher (detached here).
        student_self_attention: `{(h, w): (B, h*w, M_S)}` maps of the student.
        alpha_gt: `(B, 1, H, W)` ground-truth alpha in [0, 1], any resolution.
        teacher_kv_sizes, student_kv_sizes: `{(h, w): (hk, wk)}` key grids (the capture's `self_attention_kv_size`);
            inferred from the number of keys when left out.
    """
    _check_map("alpha_gt", alpha_gt)
    grids = [grid for grid in student_self_attention if grid in teacher_self_attention]
    if not grids:
        raise ValueError(
            f"L_STM: no resolution has self-attention maps in both models (teacher {list(teacher_self_attention)}, "
            f"student {list(student_self_attention)})."
        )
    losses = []
    for grid in grids:
        teacher, student = (
            teacher_self_attention[grid].detach(),
            student_self_attention[grid],
        )
        n = grid[0] * grid[1]
        for who, attention in (("teacher", teacher), ("student", student)):
            _check_ndim(f"{who} self-attention at {grid}", attention, 3, "(B, h*w, M)")
            if attention.shape[1] != n:
                raise ValueError(
                    f"{who} self-attention at {grid} must have h*w = {n} queries, got shape {tuple(attention.shape)}."
                )
            _check_batch(f"{who} self-attention at {grid}", attention, "alpha_gt", alpha_gt)
        teacher_keys = _key_grid(
            grid,
            teacher.shape[2],
            (teacher_kv_sizes or {}).get(grid),
            f"teacher at {grid}",
        )
        student_keys = _key_grid(
            grid,
            student.shape[2],
            (student_kv_sizes or {}).get(grid),
            f"student at {grid}",
        )
        target = _propagate_alpha(teacher, alpha_gt, teacher_keys)
        propagated = _propagate_alpha(student, alpha_gt, student_keys)
        losses.append(F.mse_loss(propagated.float(), target.float()))
    return torch.stack(losses).mean()


def cross_attention_transparency_loss(
    teacher_cross_attention: Mapping[Grid, torch.Tensor],
    student_cross_attention: Mapping[Grid, torch.Tensor],
) -> torch.Tensor:
    """L_CTM of eq. (6): `||A_CA^T - A_CA^S||^2` with sum reduction, mean over resolutions.

    Normalisation: the appendix (6.2) uses sum reduction because many entries are zero (padding tokens), which a
    mean would dilute, and pairs it with lambda_CTM = 0.1. We sum the squared differences over queries and text
    tokens and average over the batch, so the value (and lambda_CTM) do not depend on the batch size, the number of
    GPUs or gradient accumulation. Resolutions missing in the student are skipped; the result is the mean over the
    remaining ones.

    Args:
        teacher_cross_attention: `{(h, w): (B, h*w, L)}` maps of the teacher (detached here).
        student_cross_attention: `{(h, w): (B, h*w, L)}` maps of the student.
    """
    grids = [grid for grid in student_cross_attention if grid in teacher_cross_attention]
    if not grids:
        raise ValueError(
            f"L_CTM: no resolution has cross-attention maps in both models (teacher {list(teacher_cross_attention)}, "
            f"student {list(student_cross_attention)})."
        )
    losses = []
    for grid in grids:
        teacher, student = (
            teacher_cross_attention[grid].detach(),
            student_cross_attention[grid],
        )
        _check_ndim(f"student cross-attention at {grid}", student, 3, "(B, h*w, L)")
        _check_same_shape(
            f"teacher cross-attention at {grid}",
            teacher,
            f"student cross-attention at {grid}",
            student,
        )
        squared = (student.float() - teacher.float()).pow(2)
        losses.append(squared.sum() / student.shape[0])
    return torch.stack(losses).mean()


def coarse_alpha_loss(coarse_alpha: torch.Tensor, alpha_gt: torch.Tensor) -> torch.Tensor:
    """L_alpha_lr of eq. (7): L1 between alpha^lr `(B, 1, h, w)` and the ground truth down-sampled to its grid
    (`downsample_alpha`), averaged over pixels."""
    _check_map("coarse_alpha", coarse_alpha)
    _check_map("alpha_gt", alpha_gt)
    _check_batch("coarse_alpha", coarse_alpha, "alpha_gt", alpha_gt)
    target = downsample_alpha(alpha_gt, coarse_alpha.shape[-2:]).to(coarse_alpha.dtype)
    return F.l1_loss(coarse_alpha, target)


def transparency_confidence_loss(transparency_logits: torch.Tensor, known_mask: torch.Tensor) -> torch.Tensor:
    """L_R of eq. (8): binary cross-entropy between sigmoid(R) and M_hat = 1 - M, the transparent region.

    R is the "transparent confidence map, which indicates regions that may be transparent" (Sec. 3.2.2), and the
    decoder reads sigmoid(R) (Sec. 3.4), so sigmoid(R) is trained towards 1 on M_hat. Eq. (8) as printed pairs M_hat
    with log(1 / (1 + e^R)) = log(sigmoid(-R)), which would make sigmoid(R) the probability of the *known* region;
    we follow the prose, not that sign. Averaged over pixels.

    Args:
        transparency_logits: R, `(B, 1, h, w)` logits.
        known_mask: M, `(B, 1, H, W)`; resized to R's grid with `resize_known_mask` (a cell is transparent if any
            pixel it covers is).
    """
    _check_map("transparency_logits", transparency_logits)
    _check_map("known_mask", known_mask)
    _check_batch("transparency_logits", transparency_logits, "known_mask", known_mask)
    transparent = 1.0 - resize_known_mask(known_mask, transparency_logits.shape[-2:])
    return F.binary_cross_entropy_with_logits(transparency_logits, transparent.to(transparency_logits.dtype))


@dataclass
class DistillationLossWeights:
    """The lambdas of eq. (9). Defaults (10, 0.1, 0.5, 10, 1) are the paper's: Sec. 4.1 "Training Details" sets
    (lambda_STM, lambda_CTM, lambda_SG, lambda_alpha_lr, lambda_R) = (10, 0.1, 0.5, 10, 1); appendix 6.2 explains
    them (CTM small because of its sum reduction; STM and alpha_lr small in magnitude, SG large under mean reduction)
    and the hyper-parameter ablation of appendix 6.4 uses the same row as the default. Appendix Table 4 lists only
    the optimiser schedule, not the lambdas. A weight of 0 drops its term (the loss ablation of Table 5).
    """

    stm: float = 10.0
    ctm: float = 0.1
    sg: float = 0.5
    alpha_lr: float = 10.0
    r: float = 1.0


def soft_grounding_distillation_loss(
    coarse_alpha: torch.Tensor,
    transparency_logits: torch.Tensor,
    alpha_gt: torch.Tensor,
    known_mask: torch.Tensor,
    teacher_captured: Any = None,
    student_captured: Any = None,
    layer_pairs: Optional[Mapping[str, str]] = None,
    weights: Optional[DistillationLossWeights] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The student's objective, eq. (9): `l_STM L_STM + l_CTM L_CTM + l_SG L_SG + l_alpha L_alpha_lr + l_R L_R`.

    Args:
        coarse_alpha: alpha^lr of the student, `(B, 1, h, w)` in [0, 1].
        transparency_logits: R of the student, `(B, 1, h, w)`.
        alpha_gt: ground-truth alpha `(B, 1, H, W)`.
        known_mask: M `(B, 1, H', W')`, 1 on foreground and background (`data.targets.known_mask`).
        teacher_captured, student_captured: what the UNets' `capture()` recorded: objects with `features`
            (`{name: tensor}`), `self_attention`, `self_attention_kv_size` and `cross_attention` (`{(h, w): ...}`).
            Needed by the terms whose weight is not zero. For L_SG, the student's `features` are already projected
            by Phi (eq. 4).
        layer_pairs: `{student layer: teacher layer}` of L_SG (the projector's `layer_pairs`); default: same names.
        weights: the lambdas; the paper's defaults when left out.

    Returns:
        `(total, parts)`, parts keyed `"stm"`, `"ctm"`, `"sg"`, `"alpha_lr"`, `"r"` (unweighted; zero for a term with
        weight 0, which is not computed).

    A row whose text names nothing in the image has an all-zero `alpha_gt` and an all-background region map, so
    `known_mask` is 1 everywhere: L_alpha_lr and L_R then train alpha^lr and sigmoid(R) towards 0 on the whole
    grid (nothing is there, nothing is transparent). The distillation terms make the student follow the teacher,
    whose region head learnt background for such rows from eq. (2) when stage 1 had them: L_SG matches the
    features on the whole grid, L_CTM the cross-attention maps as for any row, and L_STM compares both attention
    maps applied to alpha_GT = 0, which is 0 on both sides, so that row adds nothing to it. Every loss is a mean
    over all pixels (or a sum divided by the batch size), never over a region that can be empty, so such rows give
    finite values.
    """
    weights = weights or DistillationLossWeights()
    needs_capture = {
        "stm": "self_attention",
        "ctm": "cross_attention",
        "sg": "features",
    }
    for term, attribute in needs_capture.items():
        if getattr(weights, term) != 0 and (teacher_captured is None or student_captured is None):
            raise ValueError(
                f"L_{term.upper()} has weight {getattr(weights, term)} but `teacher_captured` / `student_captured` "
                f"were not given (they must carry `{attribute}`); pass them or set its weight to 0."
            )

    def compute(term: str) -> torch.Tensor:
        if term == "stm":
            return self_attention_transparency_loss(
                teacher_captured.self_attention,
                student_captured.self_attention,
                alpha_gt,
                getattr(teacher_captured, "self_attention_kv_size", None),
                getattr(student_captured, "self_attention_kv_size", None),
            )
        if term == "ctm":
            return cross_attention_transparency_loss(
                teacher_captured.cross_attention, student_captured.cross_attention
            )
        if term == "sg":
            return semantic_guidance_loss(
                teacher_captured.features,
                student_captured.features,
                known_mask,
                layer_pairs=layer_pairs,
            )
        if term == "alpha_lr":
            return coarse_alpha_loss(coarse_alpha, alpha_gt)
        return transparency_confidence_loss(transparency_logits, known_mask)

    zero = coarse_alpha.new_zeros(())
    parts = {
        field.name: compute(field.name) if getattr(weights, field.name) != 0 else zero for field in fields(weights)
    }
    total = zero + sum(getattr(weights, name) * value for name, value in parts.items())
    return total, parts


# ----------------------------------------------------------------------------------------------------------------
# Stage 3: from soft grounding to alpha matte (Sec. 3.4): L1 + Laplacian "following Li et al. (2022)"
# ----------------------------------------------------------------------------------------------------------------


def gfm_laplacian_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """The 2-D blur kernel of GFM's Laplacian loss (Li et al., 2022), `(size, size)`.

    It is deliberately *not* a Gaussian: per axis g(d) = exp(-d^2 / (2 sigma^2))^2, and the 2-D kernel is the *sum*
    g(dx) + g(dy) (not the product), normalised to sum 1. Changing it to a true Gaussian changes the loss.
    """
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * sigma**2)) ** 2
    kernel = g[None, :] + g[:, None]
    return (kernel / kernel.sum()).float()


def laplacian_pyramid(
    image: torch.Tensor, levels: int = 5, kernel: Optional[torch.Tensor] = None
) -> list[torch.Tensor]:
    """GFM's pyramid: `levels` band-pass maps (image minus its blur, at 1, 1/2, ... resolution) and the final low-pass
    map, `levels + 1` tensors. Each level blurs with `gfm_laplacian_kernel` (replicate padding, per channel) and
    halves the blurred map by 2 x 2 average pooling; nothing is up-sampled."""
    _check_ndim("image", image, 4, "(B, C, H, W)")
    if min(image.shape[-2:]) < 2**levels:
        raise ValueError(
            f"The Laplacian pyramid with {levels} levels needs H and W >= {2**levels}, got {tuple(image.shape[-2:])}."
        )
    kernel = gfm_laplacian_kernel() if kernel is None else kernel
    channels, pad = image.shape[1], kernel.shape[-1] // 2
    weight = kernel.to(image).expand(channels, 1, *kernel.shape)
    bands, current = [], image
    for _ in range(levels):
        blurred = F.conv2d(
            F.pad(current, (pad, pad, pad, pad), mode="replicate"),
            weight,
            groups=channels,
        )
        bands.append(current - blurred)
        current = F.avg_pool2d(blurred, 2)
    bands.append(current)
    return bands


def laplacian_loss(
    alpha: torch.Tensor,
    alpha_gt: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    levels: int = 5,
) -> torch.Tensor:
    """GFM's Laplacian loss: the sum over the `levels + 1` pyramid maps of their L1 (mean) difference, every level
    weighted 1. With `mask` (e.g. an unknown region), both mattes are multiplied by it before the pyramids are built;
    the means still run over all pixels, as in GFM."""
    _check_same_shape("alpha", alpha, "alpha_gt", alpha_gt)
    if mask is not None:
        alpha, alpha_gt = alpha * mask, alpha_gt * mask
    pyramid, pyramid_gt = laplacian_pyramid(alpha, levels), laplacian_pyramid(alpha_gt, levels)
    return sum(F.l1_loss(band, band_gt) for band, band_gt in zip(pyramid, pyramid_gt))


def matting_decoder_loss(
    alpha: torch.Tensor, alpha_gt: torch.Tensor, laplacian_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The matting decoder's loss (Sec. 3.4; also the sparse up-sampler's, appendix 6.3): L1 + Laplacian loss
    following Li et al. (2022), on the whole image. The paper gives no weights; both are 1 as in GFM.

    Args:
        alpha: predicted matte `(B, 1, H, W)` in [0, 1].
        alpha_gt: ground truth at the same size.

    Returns:
        `(total, {"l1": ..., "laplacian": ...})`.
    """
    _check_map("alpha", alpha)
    _check_same_shape("alpha", alpha, "alpha_gt", alpha_gt)
    alpha_gt = alpha_gt.to(alpha.dtype)
    parts = {
        "l1": F.l1_loss(alpha, alpha_gt),
        "laplacian": laplacian_loss(alpha, alpha_gt),
    }
    return parts["l1"] + laplacian_weight * parts["laplacian"], parts
